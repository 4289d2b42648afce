"""Jobs on a workspace whose default datastore is a Blob container (a real Azurite, a real `batchai serve`).

A Batch AI job.json mounts the container with azureBlobFileSystems, reads its dataset and its script
from the mount, writes its model and logs back to the container, and its log is followed from Blob
while it runs. Outputs are listed with SAS links that work without our server, and a resubmission
with the same data transfers nothing.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import os
import urllib.request
import uuid
from urllib.parse import parse_qs, urlparse

import pytest

from batchai_jupyter.errors import BatchAIError
from batchai_jupyter.notebook.datasets import files_of, upload
from helpers.api import make_cluster, stdout_text, wait_job
from helpers.azurite_server import ACCOUNT, blob_datastore
from helpers.waits import wait_for

TRAIN = r"""
import hashlib, os, sys, time
rank = os.environ["RANK"]
data = os.environ["AZ_BATCHAI_INPUT_DATASET"]
digest = hashlib.sha256()
for name in sorted(os.listdir(data)):
    with open(os.path.join(data, name), "rb") as handle:
        digest.update(handle.read())
print("rank", rank, "dataset", digest.hexdigest(), flush=True)
for step in range(3):
    print("rank", rank, "step", step, flush=True)
gate = os.environ["GATE"]
while not os.path.exists(gate):
    time.sleep(0.1)
with open(os.path.join(os.environ["AZ_BATCHAI_OUTPUT_MODEL"], f"model-{rank}.txt"), "w") as handle:
    handle.write(f"weights of rank {rank} from {digest.hexdigest()}\n")
print("rank", rank, "done", flush=True)
"""


def _job_json(container: str, gate: str) -> dict:
    """A Batch AI 2018-05-01 job.json, as its users wrote them (placeholders and all)."""
    return {
        "properties": {
            "nodeCount": 2,
            "mountVolumes": {
                "azureBlobFileSystems": [
                    {
                        "accountName": "<AZURE_BATCHAI_STORAGE_ACCOUNT>",
                        "containerName": container,
                        "credentials": {"accountKey": "<AZURE_BATCHAI_STORAGE_KEY>"},
                        "relativeMountPath": "bfs",
                    }
                ]
            },
            "inputDirectories": [{"id": "DATASET", "path": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs/datasets/toy"}],
            "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs"}],
            "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs",
            "environmentVariables": [{"name": "GATE", "value": gate}],
            "pyTorchSettings": {
                "pythonScriptFilePath": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs/scripts/train.py",
                "communicationBackend": "gloo",
            },
        }
    }


def _blob_default_datastore(client, connection_string: str, tmp_path, container: str, **settings):
    """Creates `container` and makes it the workspace's default datastore; returns (a scratch handle on it,
    the service's answer)."""
    scratch = blob_datastore(str(tmp_path / "scratch"), container, connection_string=connection_string)
    scratch.create_container()
    created = client.request(
        "PUT",
        "workspaces/default/datastores/default",
        json_body={"kind": "blob", "containerName": container, "connectionString": connection_string, **settings},
    )
    return scratch, created


def test_two_node_batch_ai_job_on_blob(client, service_process, azurite, tmp_path, unique):
    container = unique("work")
    scratch, created = _blob_default_datastore(client, azurite.connection_string, tmp_path, container, flushSeconds=0.5)
    scratch.put_bytes("scripts/train.py", TRAIN.encode())
    dataset = tmp_path / "toy"
    dataset.mkdir()
    for index in range(3):
        (dataset / f"part-{index}.bin").write_bytes(os.urandom(256 * 1024))
    expected = hashlib.sha256(b"".join((dataset / f"part-{i}.bin").read_bytes() for i in range(3))).hexdigest()
    for index in range(3):
        scratch.upload_file(str(dataset / f"part-{index}.bin"), f"datasets/toy/part-{index}.bin")

    assert created["kind"] == "blob"
    make_cluster(client, "bfs", nodes=2)
    os.environ["AZURE_BATCHAI_STORAGE_ACCOUNT"] = ACCOUNT
    from batchai_jupyter.jsonfile import fill_placeholders

    gate = str(tmp_path / "gate")
    document = fill_placeholders(
        _job_json(container, gate),
        {"AZURE_BATCHAI_STORAGE_ACCOUNT": ACCOUNT, "AZURE_BATCHAI_STORAGE_KEY": "unused-here"},
    )
    client.create_job("default", "default", document, "train-1", cluster="bfs")

    # Followed from Blob while the job runs (the tasks are held at the gate).
    log = wait_for(
        lambda: (lambda t: t if t.count("step 2") == 2 else None)(stdout_text(client, "train-1")),
        "both ranks' logs to reach Blob while the job runs",
        timeout=90,
    )
    assert client.job("default", "default", "train-1")["executionState"] == "running"
    assert log.count(f"dataset {expected}") == 2
    open(gate, "w").close()
    job = wait_job(client, "train-1")
    assert job["executionState"] == "succeeded", job

    # Logs and model are in the container itself, not only in the service's mirror.
    outputs = client.list("workspaces/default/experiments/default/jobs/train-1/files", outputdirectoryid="MODEL")
    assert sorted(e["name"] for e in outputs) == ["model-0.txt", "model-1.txt"]
    for entry in outputs:
        assert entry["downloadUrl"].startswith(azurite.endpoint)
        with urllib.request.urlopen(entry["downloadUrl"]) as link:  # works without our server
            assert link.read().decode().endswith(f"from {expected}\n")
    short = client.list(
        "workspaces/default/experiments/default/jobs/train-1/files", outputdirectoryid="MODEL", linkexpiryinminutes=2
    )
    expiry = parse_qs(urlparse(short[0]["downloadUrl"]).query)["se"][0]
    left = dt.datetime.fromisoformat(expiry.replace("Z", "+00:00")) - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(minutes=1) < left <= dt.timedelta(minutes=2, seconds=5)
    with pytest.raises(BatchAIError) as too_long:
        client.list(
            "workspaces/default/experiments/default/jobs/train-1/files",
            outputdirectoryid="MODEL",
            linkexpiryinminutes=0,
        )
    assert too_long.value.code == "InvalidArgument" and "linkexpiryinminutes" in too_long.value.message
    blobs = {path for path, _size, _etag in scratch.remote_files("")}
    assert any(p.endswith("/outputs/model-1.txt") for p in blobs)  # Batch AI: <prefix>/<segment>/outputs
    assert any(p.endswith("/stdouterr/stdout-1.txt") for p in blobs)
    executions = [p for p in blobs if "/stdouterr/execution" in p]
    assert executions and "local directory" not in scratch.read(executions[0]).decode()

    # Resubmitting with the same data receives nothing new from Blob.
    before = client.get("workspaces/default/datastores/default")["transfers"]
    client.create_job("default", "default", document, "train-2", cluster="bfs")
    assert wait_job(client, "train-2")["executionState"] == "succeeded"
    after = client.get("workspaces/default/datastores/default")["transfers"]
    assert after["bytesReceived"] == before["bytesReceived"]
    assert after["bytesReusedFromMirror"] > before["bytesReusedFromMirror"]
    assert "AccountKey" not in service_process.log()


def test_content_addressed_dataset_upload_sends_nothing_the_second_time(client, azurite, tmp_path, unique):
    container = unique("datasets")
    blob_datastore(str(tmp_path / "scratch"), container, connection_string=azurite.connection_string).create_container()
    client.request(
        "PUT",
        f"workspaces/default/datastores/{container}",
        json_body={"kind": "blob", "containerName": container, "connectionString": azurite.connection_string},
    )
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.csv").write_bytes(b"x,y\n" * 50_000)
    (folder / "labels.txt").write_bytes(b"cat\ndog\n")
    first = upload(client, "default", "datasets", files_of(str(folder), "data"), datastore=container)
    assert first.bytes_sent == first.total_bytes > 0
    again = upload(client, "default", "datasets", files_of(str(folder), "data"), datastore=container)
    assert again.bytes_sent == 0 and again.datastore_path == first.datastore_path
    transfers = client.get(f"workspaces/default/datastores/{container}")["transfers"]
    assert transfers["bytesSent"] == first.total_bytes and transfers["bytesSkipped"] == first.total_bytes


def test_killed_task_keeps_committed_outputs_and_flushed_logs(client, azurite, tmp_path, unique):
    container = unique("kill")
    scratch, _ = _blob_default_datastore(client, azurite.connection_string, tmp_path, container, flushSeconds=0.5)
    make_cluster(client, "one", nodes=1)
    client.create_job(
        "default",
        "default",
        {
            "cluster": "one",
            "nodeCount": 1,
            "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT"}],
            "customToolkitSettings": {
                "commandLine": "echo checkpoint-1 > $AZ_BATCHAI_OUTPUT_MODEL/ckpt-1.txt; "
                "echo epoch 1 saved; exec sleep 600"
            },
        },
        "victim",
    )

    def in_blob():
        blobs = {path: size for path, size, _etag in scratch.remote_files("")}
        log = [p for p in blobs if p.endswith("/stdouterr/stdout.txt") and blobs[p]]
        model = [p for p in blobs if p.endswith("/outputs/MODEL/ckpt-1.txt")]
        return (log[0], model[0]) if log and model else None

    # While the task still runs, its committed output and its log are already in the container.
    log_blob, model_blob = wait_for(in_blob, "the output and the log to be flushed to Blob", timeout=60)
    assert client.job("default", "default", "victim")["executionState"] == "running"
    client.request("POST", "workspaces/default/experiments/default/jobs/victim/terminate")
    assert wait_job(client, "victim")["executionState"] == "failed"
    assert scratch.read(model_blob) == b"checkpoint-1\n"
    assert scratch.read(log_blob) == b"epoch 1 saved\n"


def test_cluster_mount_is_there_for_the_setup_task_whose_log_lands_in_blob(client, azurite, tmp_path, unique):
    container = unique("setup")
    scratch, _ = _blob_default_datastore(client, azurite.connection_string, tmp_path, container)
    scratch.put_bytes("setup/hello.txt", b"hello from blob\n")
    make_cluster(
        client,
        "prepared",
        nodes=1,
        nodeSetup={
            "mountVolumes": {
                "azureBlobFileSystems": [
                    {"accountName": ACCOUNT, "containerName": container, "relativeMountPath": "bfs"}
                ]
            },
            "setupTask": {
                "commandLine": "cat $AZ_BATCHAI_MOUNT_ROOT/bfs/setup/hello.txt",
                "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/bfs",
            },
        },
    )
    listing = client.list(client.cluster_path("default", "prepared") + "/files")
    names = [e["name"] for e in listing]
    stdout = next(n for n in names if n.startswith("stdout-setup-"))
    blob_text = client.request(
        "GET", client.cluster_path("default", "prepared") + "/files/content", params={"path": stdout}, raw=True
    ).text
    assert blob_text == "hello from blob\n"
    # in the container the prefix names, under Batch AI's stdOutErrPathSuffix
    cluster_uuid = uuid.UUID(client.cluster("default", "prepared")["uuid"])
    suffix = f"{client.version()['subscriptionId']}/default/workspaces/default/clusters/prepared/{cluster_uuid}"
    assert f"{suffix}/{stdout}" in [p for p, _s, _e in scratch.remote_files("")]


def test_storage_down_when_the_job_ends_is_a_clear_job_error(service_process, client, make_azurite, tmp_path, unique):
    server = make_azurite()
    container = unique("down")
    _blob_default_datastore(client, server.connection_string, tmp_path, container, retries=0, flushSeconds=60)
    make_cluster(client, "one", nodes=1)
    gate = tmp_path / "gate"
    client.create_job(
        "default",
        "default",
        {
            "cluster": "one",
            "nodeCount": 1,
            "outputDirectories": [{"id": "OUT", "pathPrefix": "x"}],
            "customToolkitSettings": {
                "commandLine": f"while [ ! -e {gate} ]; do sleep 0.1; done; "
                "echo result > $AZ_BATCHAI_OUTPUT_OUT/result.txt"
            },
        },
        "lost",
    )
    wait_for(lambda: client.job("default", "default", "lost")["executionState"] == "running", "the job to run")
    server.stop()
    gate.touch()
    job = wait_job(client, "lost")
    assert job["executionState"] == "failed"
    [failure] = [e for e in job["executionInfo"]["errors"] if e["code"] == "OutputUploadFailed"]
    segment = job["jobOutputDirectoryPathSegment"]
    assert "did not answer" in failure["message"] and f"its local copy of {segment}" in failure["message"]
    assert service_process.home not in failure["message"]  # where the service keeps it is its own business
    kept = glob.glob(
        os.path.join(service_process.home, "mirrors", "**", segment, "outputs", "OUT", "result.txt"), recursive=True
    )
    assert [open(path).read() for path in kept] == ["result\n"], kept


def test_service_killed_mid_job_resumes_flushing_without_duplicating_log(
    service_process, client, azurite, tmp_path, unique
):
    container = unique("restart")
    scratch, _ = _blob_default_datastore(client, azurite.connection_string, tmp_path, container, flushSeconds=0.5)
    make_cluster(client, "one", nodes=1)
    gate = tmp_path / "gate"
    client.create_job(
        "default",
        "default",
        {
            "cluster": "one",
            "nodeCount": 1,
            "customToolkitSettings": {
                "commandLine": f"echo before; while [ ! -e {gate} ]; do sleep 0.1; done; echo after"
            },
        },
        "survivor",
    )

    def log_in_blob():
        found = [p for p, size, _e in scratch.remote_files("") if p.endswith("/stdouterr/stdout.txt") and size]
        return found[0] if found else None

    log_blob = wait_for(log_in_blob, "the first line to reach Blob", timeout=60)
    service_process.kill()  # kill -9: the task runs on, the service's flush state is gone
    gate.touch()
    client = service_process.start()
    job = wait_job(client, "survivor")
    assert job["executionState"] == "succeeded", job
    assert scratch.read(log_blob) == b"before\nafter\n"
    assert client.read_job_file("default", "default", "survivor", "stdout.txt", "stdouterr") == b"before\nafter\n"


def test_a_job_reads_a_blob_datastore_named_by_location(client, azurite, tmp_path, unique):
    """An input in a Blob datastore that is not the workspace's default is staged into its mirror."""
    container = unique("located")
    blob_datastore(str(tmp_path / "scratch"), container, connection_string=azurite.connection_string).create_container()
    client.create_datastore(
        "default", "shelf", {"kind": "blob", "containerName": container, "connectionString": azurite.connection_string}
    )
    folder = tmp_path / "set"
    (folder / "deep").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha\n")
    (folder / "deep" / "b.txt").write_text("beta\n")
    report = upload(client, "default", "sets", files_of(str(folder), "set"), datastore="shelf")
    assert report.location == f"datastore://shelf/{report.datastore_path}"
    client.create_cluster("default", {"backend": "local", "nodeCount": 1}, "one")
    client.create_job(
        "default",
        "default",
        {
            "cluster": "one",
            "nodeCount": 1,
            "inputDirectories": [{"id": "SET", "path": report.location}],
            "customToolkitSettings": {"commandLine": 'cd "$AZ_BATCHAI_INPUT_SET" && cat a.txt deep/b.txt'},
        },
        "located",
    )
    job = client.wait_for_job("default", "default", "located", timeout=120)
    stdout = client.read_job_file("default", "default", "located", "stdout.txt").decode()
    assert job["executionState"] == "succeeded", (job["executionInfo"], stdout)
    assert stdout == "alpha\nbeta\n"
