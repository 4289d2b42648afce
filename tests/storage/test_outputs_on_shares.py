"""Logs and outputs land where the job.json says: in the mounted share its prefixes point into, in Batch AI's
layout (<prefix>/<jobOutputDirectoryPathSegment>/stdouterr, .../outputs[/<pathSuffix>]), listed and served
from there, and read back by a later job that mounts the same share."""

from __future__ import annotations

from helpers.api import make_cluster, read_log, wait_job

JOBS = "workspaces/default/experiments/default/jobs"


def share_mount(share: str, path: str) -> dict:
    return {
        "azureFileShares": [
            {
                "accountName": "oldaccount",
                "azureFileUrl": f"https://oldaccount.file.core.windows.net/{share}",
                "credentials": {"accountKey": "<AZURE_BATCHAI_STORAGE_KEY>"},
                "relativeMountPath": path,
            }
        ]
    }


def datastore_names(client, datastore: str, path: str) -> list[str]:
    return sorted(e["name"] for e in client.list(f"workspaces/default/datastores/{datastore}/files", path=path))


def test_outputs_and_logs_go_to_the_mounted_shares_and_a_later_job_reads_them(shared_client, unique):
    logs_share, models_share = unique("logs"), unique("models")
    cluster = unique("shares")
    make_cluster(shared_client, cluster, nodes=1, nodeSetup={"mountVolumes": share_mount(logs_share, "logs")})
    first = unique("train")
    shared_client.create_job(
        "default",
        "default",
        {
            "properties": {
                "nodeCount": 1,
                "mountVolumes": share_mount(models_share, "afs"),
                "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/logs",
                "outputDirectories": [
                    {"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs/models", "pathSuffix": "Models"},
                    {"id": "SUMMARY", "pathPrefix": "${AZ_BATCHAI_JOB_MOUNT_ROOT}/afs"},
                    {"id": "RAW", "pathPrefix": f"datastore://{models_share}/raw", "pathSuffix": "r"},
                ],
                "customToolkitSettings": {
                    "commandLine": "echo weights > $AZ_BATCHAI_OUTPUT_MODEL/model.txt && "
                    "echo events > $AZ_BATCHAI_OUTPUT_SUMMARY/events.txt && "
                    "echo raw > $AZ_BATCHAI_OUTPUT_RAW/raw.txt && "
                    "echo $AZ_BATCHAI_OUTPUT_MODEL && echo $AZ_BATCHAI_STDOUTERR_DIR"
                },
            }
        },
        first,
        cluster=cluster,
    )
    job = wait_job(shared_client, first)
    assert job["executionState"] == "succeeded", job
    segment = job["jobOutputDirectoryPathSegment"]

    # The tasks saw Batch AI's paths: the output under the job's mount of the share.
    model_dir, stdouterr_dir = read_log(shared_client, first, "stdout.txt").split()
    assert "$" not in model_dir
    assert model_dir.endswith(f"/afs/models/{segment}/outputs/Models")
    assert stdouterr_dir.endswith(f"/{segment}/stdouterr")
    # The shares hold them in that layout.
    assert datastore_names(shared_client, models_share, f"models/{segment}/outputs/Models") == ["model.txt"]
    assert datastore_names(shared_client, models_share, f"{segment}/outputs") == ["events.txt"]
    assert datastore_names(shared_client, models_share, f"raw/{segment}/outputs/r") == ["raw.txt"]
    assert "stdout.txt" in datastore_names(shared_client, logs_share, f"{segment}/stdouterr")
    # The service lists and serves them from there.
    listed = shared_client.list(f"{JOBS}/{first}/files", outputdirectoryid="MODEL")
    assert [e["name"] for e in listed] == ["model.txt"]
    assert read_log(shared_client, first, "model.txt", "MODEL") == "weights\n"
    assert read_log(shared_client, first, "events.txt", "SUMMARY") == "events\n"

    # A later job mounting the same share reads the first one's output through it.
    second = unique("score")
    shared_client.create_job(
        "default",
        "default",
        {
            "properties": {
                "nodeCount": 1,
                "mountVolumes": share_mount(models_share, "input"),
                "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
                "inputDirectories": [
                    {"id": "MODEL", "path": f"$AZ_BATCHAI_JOB_MOUNT_ROOT/input/models/{segment}/outputs/Models"}
                ],
                "customToolkitSettings": {"commandLine": "cat $AZ_BATCHAI_INPUT_MODEL/model.txt"},
            }
        },
        second,
        cluster=cluster,
    )
    assert wait_job(shared_client, second)["executionState"] == "succeeded"
    assert read_log(shared_client, second, "stdout.txt") == "weights\n"
