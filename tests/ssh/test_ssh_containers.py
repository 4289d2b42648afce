"""Jobs in images on SSH hosts (sshd in network namespaces): each host pulls the image from the private
registry through its bridge (its progress in the host's log while it pulls), and the ranks of a 2-host job
talk over the hosts' own network."""

from __future__ import annotations

import shutil
import tempfile

import pytest

from helpers.api import read_log, wait_job
from helpers.containers import EXCHANGE, IMAGE_MARKER_TEXT, HeldProxy, Storage, see_the_pull_held
from helpers.jobs import list_files, logs_of, records
from helpers.ssh import create_ssh_cluster, put_in_datastore


@pytest.fixture(scope="module")
def host_storage():
    """The hosts' podman store: outside pytest's base directory, which the hosts do not see."""
    storage = Storage(tempfile.mkdtemp(prefix="batchai-podman-hosts-"))
    yield storage
    storage.remove()
    shutil.rmtree(storage.root, ignore_errors=True)


def test_a_two_host_job_runs_in_its_image_and_its_ranks_talk_over_the_hosts_network(
    shared_service, shared_client, ssh_hosts, container_setup, host_storage, unique
):
    cluster = unique("sshimg")
    runtime = container_setup.runtime_for_hosts(host_storage)
    create_ssh_cluster(shared_client, cluster, ssh_hosts, spec_extra={"containerRuntime": runtime})
    code = put_in_datastore(shared_service.home, f"inputs/{cluster}", {"exchange.py": EXCHANGE})
    # the machine, from the hosts, through a relay that holds the pull until the log has shown it
    proxy = HeldProxy(container_setup.registry.port, everywhere=True)
    registry = f"{ssh_hosts.subnet}.1:{proxy.port}"
    name = unique("ranks")
    document = {
        "cluster": cluster,
        "nodeCount": 2,
        "inputDirectories": [{"id": "CODE", "path": code}],
        "pyTorchSettings": {"pythonScriptFilePath": "$AZ_BATCHAI_INPUT_CODE/exchange.py"},
        "containerSettings": {
            "imageSourceRegistry": {
                "serverUrl": registry,
                "image": container_setup.images["ssh"],
                "credentials": container_setup.credentials(),
            }
        },
    }
    try:
        shared_client.create_job("default", "default", document, name)
        see_the_pull_held(shared_client, name, proxy, registry)  # the host's pull streams into its log
        job = wait_job(shared_client, name, timeout=180)
    finally:
        proxy.close()
    assert job["executionState"] == "succeeded", f"{job['executionInfo']}\n{logs_of(shared_client, name)}"

    ranks = {record["rank"]: record for record in records(logs_of(shared_client, name))}
    assert ranks[0]["heard"] == "hello from rank 1" and ranks[1]["heard"] == "hello from rank 0"
    assert {record["marker"] for record in ranks.values()} == {IMAGE_MARKER_TEXT}
    logs = [read_log(shared_client, name, entry) for entry in list_files(shared_client, name) if "execution" in entry]
    assert len(logs) == 2 and any(f"pulling image {registry}/" in log for log in logs), logs
    assert any("Writing manifest" in log for log in logs), logs  # podman's own progress (the hosts share a store)
    assert container_setup.registry.password not in logs_of(shared_client, name) + shared_service.log()
