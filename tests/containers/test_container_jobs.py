"""Jobs in images from a private registry, end to end: real podman (runc), a real docker-registry with TLS
and htpasswd auth, a real `batchai serve`, a 2-node local cluster shared by the module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from batchai_jupyter.client import Client
from helpers.api import execution_log, make_cluster, read_log, wait_job
from helpers.cli import cli, ok
from helpers.containers import EXCHANGE, IMAGE_MARKER, IMAGE_MARKER_TEXT, HeldProxy, see_the_pull_held
from helpers.jobs import job_tasks, list_files, logs_of, one_record, read_bytes, records
from helpers.service import TOKEN
from helpers.waits import wait_for

SCHEMA = "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/job.json"

# Run in the image: what it sees of the image, of the machine, and of the contract's directories.
INSPECT = f"""
import json, os, sys
out = os.environ["AZ_BATCHAI_OUTPUT_MODEL"]
with open(os.path.join(out, "model.txt"), "w") as handle:
    handle.write("written in the image")
with open(os.path.join(os.environ["AZ_BATCHAI_JOB_MOUNT_ROOT"], "share", "from-image.txt"), "w") as handle:
    handle.write("written through the job's mount")
print("RECORD " + json.dumps({{
    "marker": open("{IMAGE_MARKER}").read().strip(),
    "host_python": os.path.exists(sys.argv[1]),
    "python": sys.executable,
    "cwd": os.getcwd(),
    "job_temp": os.environ["AZ_BATCHAI_JOB_TEMP"],
    "prep": open(os.path.join(os.environ["AZ_BATCHAI_JOB_TEMP"], "prep.txt")).read().strip(),
    "shared_temp": os.path.isdir(os.environ["AZ_BATCHAI_SHARED_JOB_TEMP"]),
    "input": open(os.path.join(os.environ["AZ_BATCHAI_INPUT_DATA"], "data.txt")).read(),
    "secret": os.environ.get("TOKEN_FOR_JOB"),
    "registry_password_seen": any("{{password}}" in value for value in os.environ.values()),
}}))
print("to stderr", file=sys.stderr)
"""


@pytest.fixture(scope="module")
def cluster(shared_service, container_setup):
    client = Client(shared_service.url, TOKEN)
    make_cluster(client, "images", nodes=2, containerRuntime=container_setup.runtime())
    return "images"


@pytest.fixture(scope="module")
def argv_watch():
    """Every command line on the machine, sampled all through the module (the password must be in none)."""
    seen: set[str] = set()
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            seen.update(_command_lines())
            stop.wait(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    yield seen
    stop.set()
    thread.join()


def credentials(setup, password: str | None = None) -> dict:
    return {"username": setup.registry.username, "password": setup.registry.password if password is None else password}


def batch_ai_job(cluster: str, setup, tag: str, command: str, password: str | None = None, **extra) -> dict:
    return {
        "$schema": SCHEMA,
        "properties": {
            "cluster": cluster,
            "nodeCount": 1,
            "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
            "containerSettings": {
                "imageSourceRegistry": {
                    "serverUrl": f"https://{setup.registry.address}",
                    "image": setup.images[tag],
                    "credentials": credentials(setup, password),
                },
                "shmSize": "64m",
            },
            "customToolkitSettings": {"commandLine": command},
            **extra,
        },
    }


def create(client, name: str, document: dict) -> dict:
    return client.create_job("default", "default", document, name)


def test_a_batch_ai_job_runs_in_its_image_from_a_private_registry(
    shared_client, shared_service, cluster, container_setup, tmp_path, unique, argv_watch
):
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.txt").write_text("input seen in the image")
    password = container_setup.registry.password
    (data / "inspect.py").write_text(INSPECT.replace("{password}", password))  # inputs are seen in the image
    name = unique("inside")
    document = batch_ai_job(
        cluster,
        container_setup,
        "1",
        f"python3 $AZ_BATCHAI_INPUT_DATA/inspect.py {sys.executable}",
        inputDirectories=[{"id": "DATA", "path": str(data)}],
        outputDirectories=[{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_JOB_TEMP"}],
        # bash's own `$(<file)`: the image has no coreutils
        jobPreparation={"commandLine": f'echo "$(<{IMAGE_MARKER})" > $AZ_BATCHAI_JOB_TEMP/prep.txt'},
        secrets=[{"name": "TOKEN_FOR_JOB", "value": "job-secret"}],
        # a share with no datastore registered for it: a local directory datastore, linked into the mount root
        mountVolumes={
            "azureFileShares": [
                {
                    "accountName": "acct",
                    "azureFileUrl": "https://acct.file.core.windows.net/in-image",
                    "relativeMountPath": "share",
                }
            ]
        },
    )
    shown = create(shared_client, name, document)
    job = wait_job(shared_client, name, timeout=180)
    assert job["executionState"] == "succeeded", f"{job['executionInfo']}\n{logs_of(shared_client, name)}"

    seen = one_record(read_log(shared_client, name, "stdout.txt"))
    assert seen["marker"] == IMAGE_MARKER_TEXT  # the image's files ...
    assert seen["host_python"] is False  # ... not the machine's
    assert seen["python"].startswith("/usr/bin/python3")
    assert seen["cwd"] == seen["job_temp"]
    assert seen["prep"] == IMAGE_MARKER_TEXT  # job preparation ran in the same image
    assert seen["shared_temp"] is True
    assert seen["input"] == "input seen in the image"
    assert seen["secret"] == "job-secret"
    assert seen["registry_password_seen"] is False
    assert read_log(shared_client, name, "stderr.txt").strip() == "to stderr"
    assert read_bytes(shared_client, name, "model.txt", "MODEL") == b"written in the image"
    with open(os.path.join(shared_service.home, "datastores", "default", "in-image", "from-image.txt")) as handle:
        assert handle.read() == "written through the job's mount"

    log = execution_log(shared_client, name)
    assert f"pulling image {container_setup.registry.address}/{container_setup.images['1']}" in log

    # The credentials: the username is shown, the password nowhere.
    settings = shared_client.get(shared_client.job_path("default", "default", name))["properties"]["containerSettings"]
    assert settings["imageSourceRegistry"]["credentials"] == {"username": container_setup.registry.username}
    everything = [json.dumps(shown), json.dumps(job), logs_of(shared_client, name), shared_service.log()]
    everything += sorted(argv_watch)
    assert not [text for text in everything if password in text]
    assert not any(TOKEN in text for text in argv_watch)
    assert any("podman" in line and " run " in line for line in argv_watch), "no container was seen running"


def test_a_second_job_on_the_nodes_uses_the_pulled_image_and_ranks_talk_over_the_host_network(
    shared_client, cluster, container_setup, tmp_path, unique
):
    (tmp_path / "exchange.py").write_text(EXCHANGE)
    name = unique("ranks")
    spec = batch_ai_job(cluster, container_setup, "1", "")
    properties = spec["properties"]
    del properties["customToolkitSettings"]
    properties.update(
        nodeCount=2,
        inputDirectories=[{"id": "CODE", "path": str(tmp_path)}],
        pyTorchSettings={"pythonScriptFilePath": "$AZ_BATCHAI_INPUT_CODE/exchange.py"},
    )
    create(shared_client, name, spec)
    job = wait_job(shared_client, name, timeout=180)
    assert job["executionState"] == "succeeded", f"{job['executionInfo']}\n{logs_of(shared_client, name)}"

    ranks = {record["rank"]: record for record in records(logs_of(shared_client, name))}
    assert ranks[0]["heard"] == "hello from rank 1" and ranks[1]["heard"] == "hello from rank 0"
    assert {record["marker"] for record in ranks.values()} == {IMAGE_MARKER_TEXT}
    logs = [read_log(shared_client, name, entry) for entry in list_files(shared_client, name) if "execution" in entry]
    assert len(logs) == 2
    for log in logs:  # both nodes had it from the first job: the registry only checked the credentials
        assert "is on this node already: the registry checks" in log and "pulling image" not in log
        assert "Copying blob" not in log and "its manifest only" in log


def failed_pull(client, name: str) -> str:
    job = wait_job(client, name, timeout=120)
    assert job["executionState"] == "failed", job
    assert job_tasks(client, name) == []  # nothing of the job started
    errors = job["executionInfo"]["errors"]
    assert errors[-1]["code"] == "ImagePullFailed", errors
    return errors[-1]["message"]


def test_a_wrong_password_fails_the_job_with_the_registrys_reason(shared_client, cluster, container_setup, unique):
    name = unique("wrong-password")
    create(shared_client, name, batch_ai_job(cluster, container_setup, "wrong-password", "true", password="nope"))
    message = failed_pull(shared_client, name)
    assert "invalid username/password" in message, message
    assert container_setup.images["wrong-password"] in message


def test_an_unknown_image_fails_the_job_with_the_registrys_reason(shared_client, cluster, container_setup, unique):
    name = unique("unknown")
    document = batch_ai_job(cluster, container_setup, "1", "true")
    document["properties"]["containerSettings"]["imageSourceRegistry"]["image"] = "batchai-test/none:1"
    create(shared_client, name, document)
    message = failed_pull(shared_client, name)
    assert "manifest unknown" in message, message


def test_a_stopped_registry_fails_the_job_with_a_clear_reason(shared_client, cluster, container_setup, unique):
    name = unique("registry-down")
    container_setup.registry.stop()
    try:
        create(shared_client, name, batch_ai_job(cluster, container_setup, "registry-down", "true"))
        message = failed_pull(shared_client, name)
    finally:
        container_setup.registry.start()
    assert "connection refused" in message, message


def test_an_image_pulled_with_credentials_is_not_reused_without_them(shared_client, container_setup, unique):
    cluster = unique("reuse")
    make_cluster(shared_client, cluster, nodes=1, containerRuntime=container_setup.runtime())
    owner = unique("owner")
    create(shared_client, owner, batch_ai_job(cluster, container_setup, "reused", "true"))
    job = wait_job(shared_client, owner)
    assert job["executionState"] == "succeeded", f"{job['executionInfo']}\n{logs_of(shared_client, owner)}"

    wrong = unique("wrong-credentials")
    create(shared_client, wrong, batch_ai_job(cluster, container_setup, "reused", "true", password="nope"))
    assert "invalid username/password" in failed_pull(shared_client, wrong)

    anonymous = unique("no-credentials")
    document = batch_ai_job(cluster, container_setup, "reused", "true")
    del document["properties"]["containerSettings"]["imageSourceRegistry"]["credentials"]
    create(shared_client, anonymous, document)
    message = failed_pull(shared_client, anonymous)
    assert "authentication required" in message or "unauthorized" in message, message


def test_the_pull_shows_its_progress_in_the_node_log_while_it_pulls(shared_client, cluster, container_setup, unique):
    proxy = HeldProxy(container_setup.registry.port)  # the registry answers nothing until released
    name = unique("held")
    document = batch_ai_job(cluster, container_setup, "held", "true")
    document["properties"]["containerSettings"]["imageSourceRegistry"]["serverUrl"] = proxy.address
    try:
        create(shared_client, name, document)
        see_the_pull_held(shared_client, name, proxy, proxy.address)
        job = wait_job(shared_client, name)
    finally:
        proxy.close()
    assert job["executionState"] == "succeeded", f"{job['executionInfo']}\n{logs_of(shared_client, name)}"
    log = execution_log(shared_client, name)
    assert "Copying blob" in log and "Writing manifest" in log, log  # podman's own progress


def test_the_cli_runs_a_job_file_in_the_image_it_names(
    shared_service, shared_client, cluster, container_setup, tmp_path, unique
):
    name = unique("cli")
    spec = {
        "toolkit": "custom",
        "commandLine": f'echo "$(<{IMAGE_MARKER})"',
        # the file's own image is replaced by --image; its credentials are kept
        "containerSettings": {"imageSourceRegistry": {"image": "ubuntu", "credentials": container_setup.credentials()}},
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(spec))
    image = container_setup.reference("1")
    printed = ok(cli(shared_service, "job", "create", "-n", name, "-c", cluster, "-f", str(path), "--image", image))
    assert container_setup.registry.password not in printed
    job = wait_job(shared_client, name)
    assert job["executionState"] == "succeeded", job["executionInfo"]
    assert read_log(shared_client, name, "stdout.txt").strip() == IMAGE_MARKER_TEXT


def test_terminating_a_job_in_an_image_ends_its_container(shared_client, cluster, container_setup, unique):
    name = unique("terminated")
    sleeper = "import time; time.sleep(600)  # terminated-in-image"
    create(
        shared_client, name, batch_ai_job(cluster, container_setup, "1", f'echo started; exec python3 -c "{sleeper}"')
    )
    wait_for(lambda: "started" in read_log(shared_client, name, "stdout.txt"), "the job's task to start in its image")
    shared_client.terminate_job("default", "default", name)
    job = wait_job(shared_client, name, timeout=60)
    assert job["executionState"] == "failed"
    # SIGTERM reached the task in the container (podman's --init passes it on): 128 + 15, not a SIGKILL's 137
    assert job["executionInfo"]["exitCode"] == 143, job["executionInfo"]
    assert not [command for command in _command_lines() if "terminated-in-image" in command]
    listing = subprocess.run(
        [*container_setup.service_storage.podman(), "ps", "--all", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"batchai-{job['uuid'][:12]}" not in listing.stdout  # removed with its task (--rm)


def _command_lines() -> list[str]:
    lines = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                lines.append(handle.read().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return lines


def test_a_node_keeps_at_most_its_image_cache_limit(shared_client, container_setup, unique):
    cluster = unique("cache")
    make_cluster(shared_client, cluster, nodes=1, containerRuntime={**container_setup.runtime(), "imageCacheLimit": 1})
    logs = {}
    for tag in ("cache-a", "cache-b"):
        name = unique(tag)
        create(shared_client, name, batch_ai_job(cluster, container_setup, tag, "true"))
        job = wait_job(shared_client, name)
        assert job["executionState"] == "succeeded", f"{job['executionInfo']}\n{logs_of(shared_client, name)}"
        logs[tag] = execution_log(shared_client, name)
    first, second = container_setup.reference("cache-a"), container_setup.reference("cache-b")
    assert f"image {first} removed from this node (imageCacheLimit 1)" in logs["cache-b"], logs
    podman = container_setup.service_storage.podman()
    assert subprocess.run([*podman, "image", "exists", first]).returncode == 1
    assert subprocess.run([*podman, "image", "exists", second]).returncode == 0


def test_gpus_a_node_cannot_give_to_containers_are_not_promised_to_the_task(shared_client, container_setup, unique):
    cluster = unique("gpu")  # a local node counting one GPU, without a CDI spec or the nvidia hook (this machine)
    make_cluster(shared_client, cluster, nodes=1, gpusPerNode=1, containerRuntime=container_setup.runtime())
    name = unique("gpu-job")
    command = 'echo "gpus=$AZ_BATCHAI_NUM_GPUS cuda=${CUDA_VISIBLE_DEVICES-unset}"'
    create(shared_client, name, batch_ai_job(cluster, container_setup, "1", command))
    job = wait_job(shared_client, name)
    assert job["executionState"] == "succeeded", f"{job['executionInfo']}\n{logs_of(shared_client, name)}"
    assert read_log(shared_client, name, "stdout.txt").strip() == "gpus=0 cuda=unset"
    assert "GPU(s) stay outside the container" in execution_log(shared_client, name)
