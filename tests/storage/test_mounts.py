"""Batch AI mountVolumes on a machine with no Azure: shares become local directory datastores, file
servers are registered shared paths, unmanaged file systems run their mount command."""

from __future__ import annotations

import pytest

from batchai_jupyter.errors import BatchAIError
from helpers.api import execution_log, make_cluster, read_log, wait_job


def _run(client, name: str, cluster: str, properties: dict) -> dict:
    client.create_job(
        "default",
        "default",
        {"properties": {"nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs", **properties}},
        name,
        cluster=cluster,
    )
    return wait_job(client, name)


def test_file_share_without_azure_is_a_local_datastore_named_after_it(shared_client, unique):
    cluster = unique("afs")
    make_cluster(shared_client, cluster, nodes=1)
    share = unique("share")
    job = unique("job")
    done = _run(
        shared_client,
        job,
        cluster,
        {
            "mountVolumes": {
                "azureFileShares": [
                    {
                        "accountName": "myaccount",
                        "azureFileUrl": f"https://myaccount.file.core.windows.net/{share}",
                        "credentials": {"accountKey": "not-used-here"},
                        "relativeMountPath": "afs",
                    }
                ]
            },
            "customToolkitSettings": {
                "commandLine": "mkdir -p $AZ_BATCHAI_JOB_MOUNT_ROOT/afs/models && "
                "echo trained > $AZ_BATCHAI_JOB_MOUNT_ROOT/afs/models/m.txt"
            },
        },
    )
    assert done["executionState"] == "succeeded", done
    assert f"local directory datastore '{share}'" in execution_log(shared_client, job)
    stores = {d["name"]: d for d in shared_client.list("workspaces/default/datastores")}
    assert stores[share]["kind"] == "local"
    listed = shared_client.list(f"workspaces/default/datastores/{share}/files", path="models")
    assert [e["name"] for e in listed] == ["m.txt"]
    # A second job sees what the first left on the share.
    again = unique("job")
    assert (
        _run(
            shared_client,
            again,
            cluster,
            {
                "mountVolumes": {
                    "azureFileShares": [
                        {"azureFileUrl": f"https://myaccount.file.core.windows.net/{share}", "relativeMountPath": "afs"}
                    ]
                },
                "customToolkitSettings": {"commandLine": "cat $AZ_BATCHAI_JOB_MOUNT_ROOT/afs/models/m.txt"},
            },
        )["executionState"]
        == "succeeded"
    )
    assert read_log(shared_client, again, "stdout.txt") == "trained\n"


def test_file_server_and_unmanaged_mounts_at_cluster_and_job_level(shared_client, unique, tmp_path):
    shared = tmp_path / "nfs-export"
    (shared / "data").mkdir(parents=True)
    (shared / "data" / "input.txt").write_text("from nfs\n")
    server = unique("nfs")
    shared_client.request(
        "PUT", f"workspaces/default/datastores/{server}", json_body={"kind": "local", "path": str(shared)}
    )
    cluster = unique("mnt")
    make_cluster(
        shared_client,
        cluster,
        nodes=1,
        nodeSetup={
            "mountVolumes": {
                "fileServers": [
                    {
                        "fileServer": {
                            "id": f"/subscriptions/s/resourceGroups/g/providers/Microsoft.BatchAI/fileservers/{server}"
                        },
                        "sourceDirectory": "data",
                        "relativeMountPath": "nfs",
                    }
                ]
            }
        },
    )
    job = unique("job")
    done = _run(
        shared_client,
        job,
        cluster,
        {
            "mountVolumes": {
                "unmanagedFileSystems": [
                    {"mountCommand": "sh -c 'echo mounted > \"$0/marker\"'", "relativeMountPath": "gluster"}
                ]
            },
            "inputDirectories": [{"id": "DATA", "path": "$AZ_BATCHAI_MOUNT_ROOT/nfs"}],
            "customToolkitSettings": {
                "commandLine": "cat $AZ_BATCHAI_INPUT_DATA/input.txt $AZ_BATCHAI_JOB_MOUNT_ROOT/gluster/marker"
            },
        },
    )
    assert done["executionState"] == "succeeded", done
    assert read_log(shared_client, job, "stdout.txt") == "from nfs\nmounted\n"


def test_mount_errors_are_clear(shared_client, unique):
    cluster = unique("bad")
    make_cluster(shared_client, cluster, nodes=1)
    job = unique("job")
    failed = _run(
        shared_client,
        job,
        cluster,
        {
            "mountVolumes": {
                "fileServers": [{"fileServer": {"id": "/x/fileservers/nowhere"}, "relativeMountPath": "n"}]
            },
            "customToolkitSettings": {"commandLine": "true"},
        },
    )
    assert failed["executionState"] == "failed"
    message = " ".join(e["message"] for e in failed["executionInfo"]["errors"])
    assert "nowhere" in message and "batchai file-server create" in message
    job = unique("job")
    failed = _run(
        shared_client,
        job,
        cluster,
        {
            "mountVolumes": {"unmanagedFileSystems": [{"mountCommand": "false", "relativeMountPath": "g"}]},
            "customToolkitSettings": {"commandLine": "true"},
        },
    )
    assert failed["executionState"] == "failed" and "mountCommand 'false' exited with code 1" in " ".join(
        e["message"] for e in failed["executionInfo"]["errors"]
    )
    with pytest.raises(BatchAIError) as escape:
        shared_client.request(
            "PUT", f"workspaces/default/datastores/{unique('rel')}", json_body={"kind": "local", "path": "relative/dir"}
        )
    assert escape.value.code == "InvalidDatastore"
