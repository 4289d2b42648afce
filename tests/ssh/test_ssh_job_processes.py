"""On SSH hosts as on local nodes: a failed rank or a terminate ends the job with nothing it started
left running on the hosts, also what escaped into a session of its own. The hosts are network
namespaces of this machine, so /proc here shows their processes."""

from __future__ import annotations

import os

import pytest

from helpers.ssh import PYTHON, create_ssh_cluster, put_in_datastore
from helpers.waits import wait_for


@pytest.fixture(scope="module")
def cluster(shared_service, ssh_hosts):
    from batchai_jupyter.client import Client

    client = Client(shared_service.url, shared_service.env()["BATCHAI_TOKEN"])
    create_ssh_cluster(client, "sshprocs", ssh_hosts)
    return "sshprocs"


def idle_nodes(client, cluster: str) -> int:
    return client.get(client.cluster_path("default", cluster))["nodeStateCounts"]["idleNodeCount"]


def start_job(client, home: str, cluster: str, probe) -> tuple[str, str]:
    token = probe.token()
    scripts = put_in_datastore(home, f"inputs/{token}", {"ranks.py": probe.SCRIPT})
    name = "job-" + token[-10:]
    client.create_job(
        "default",
        "default",
        {
            "cluster": cluster,
            "nodeCount": 2,
            "inputDirectories": [{"id": "SCRIPTS", "path": scripts}],
            "pyTorchSettings": {
                "pythonScriptFilePath": "$AZ_BATCHAI_INPUT_SCRIPTS/ranks.py",
                "pythonInterpreterPath": PYTHON,
                "commandLineArgs": f"{token} ~/go-{token}",
            },
        },
        name,
    )
    wait_for(lambda: probe.processes(token) == probe.expected(token), "every rank's background processes", timeout=120)
    return name, token


def test_a_failed_rank_leaves_nothing_running_on_the_hosts(
    shared_service, shared_client, cluster, ssh_hosts, leftover_probe
):
    name, token = start_job(shared_client, shared_service.home, cluster, leftover_probe)
    for host in ssh_hosts.hosts:  # each host's ~, seen from outside
        open(os.path.join(host.home, f"go-{token}"), "w").close()
    done = shared_client.wait_for_job("default", "default", name, timeout=180)
    assert done["executionState"] == "failed"
    errors = done["executionInfo"]["errors"]
    assert [e["code"] for e in errors] == ["JobFailed"] and "exited with code 3" in errors[0]["message"], errors
    wait_for(lambda: leftover_probe.processes(token) == [], "the failed job's processes to be gone")
    assert idle_nodes(shared_client, cluster) == 2


def test_terminating_leaves_nothing_running_on_the_hosts(shared_service, shared_client, cluster, leftover_probe):
    name, token = start_job(shared_client, shared_service.home, cluster, leftover_probe)
    shared_client.request("POST", f"workspaces/default/experiments/default/jobs/{name}/terminate")
    done = shared_client.wait_for_job("default", "default", name, timeout=180)
    assert done["executionState"] == "failed"
    assert [e["code"] for e in done["executionInfo"]["errors"]] == ["JobTerminated"]
    wait_for(lambda: leftover_probe.processes(token) == [], "the terminated job's processes to be gone")
    assert idle_nodes(shared_client, cluster) == 2
