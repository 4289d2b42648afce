"""The `az batchai` flags of the 2018-05-01 era through the real `batchai` console script: storage shortcuts
mounted as Batch AI mounted them, Azure-VM flags accepted with a note saying this backend does not use them,
a key refused on the command line, and an unknown flag answered with the subcommand's usage and a guess."""

from __future__ import annotations

import json
import uuid

from helpers.api import read_log, wait_job
from helpers.cli import cli, ok
from helpers.waits import wait_for


def test_cluster_and_job_create_take_azs_flags(shared_service, shared_client, unique, tmp_path):
    cluster, share, container = unique("azflags"), unique("share"), unique("container")
    created = cli(
        shared_service,
        "cluster", "create", "-g", "batchai.recipes", "-w", "default", "-n", cluster,
        "-s", "STANDARD_NC6", "-t", "1", "-i", "UbuntuDSVM",
        "-u", "demoUser", "-p", "Pa$$w0rd-never-kept", "--generate-ssh-keys",
        "--afs-name", share, "--afs-mount-path", "azurefileshare", "--use-auto-storage",
        "--setup-task", "echo set up > $AZ_BATCHAI_MOUNT_ROOT/azurefileshare/setup.txt",
        "--setup-task-output", "$AZ_BATCHAI_MOUNT_ROOT/azurefileshare",
        "-o", "json",
    )  # fmt: skip
    spec = json.loads(ok(created))
    assert "note: -u/-p/-k/--generate-ssh-keys make an admin account on Azure VMs" in created.stderr
    assert "the local backend does not use them" in created.stderr and "-i/--image" in created.stderr
    assert "Pa$$w0rd-never-kept" not in json.dumps(spec)
    assert spec["properties"]["vmSize"] == "STANDARD_NC6" and spec["properties"]["cpusPerNode"] == 6
    mounts = spec["properties"]["nodeSetup"]["mountVolumes"]
    assert {(m["azureFileUrl"].rsplit("/", 1)[1], m["relativeMountPath"]) for m in mounts["azureFileShares"]} == {
        (share, "azurefileshare"),
        ("batchaishare", "autoafs"),
    }
    assert [(m["containerName"], m["relativeMountPath"]) for m in mounts["azureBlobFileSystems"]] == [
        ("batchaicontainer", "autobfs")
    ]
    wait_for(lambda: shared_client.cluster("default", cluster)["nodeStateCounts"]["idleNodeCount"] == 1, "the node")
    # the setup task's logs in the share, under Batch AI's stdOutErrPathSuffix, and listed from there
    subscription = shared_client.version()["subscriptionId"]
    cluster_uuid = uuid.UUID(shared_client.cluster("default", cluster)["uuid"])  # with dashes, as Batch AI's
    suffix = f"{subscription}/default/workspaces/default/clusters/{cluster}/{cluster_uuid}"
    in_share = shared_client.list(f"workspaces/default/datastores/{share}/files", path=suffix)
    names = {e["name"] for e in in_share}
    assert len(names) == 2 and all(n.startswith(("stdout-setup-", "stderr-setup-")) for n in names), names
    assert {e["name"] for e in shared_client.cluster_files("default", cluster)} == names

    job_json = tmp_path / "job.json"
    job_json.write_text(
        json.dumps(
            {
                "properties": {
                    "nodeCount": 1,
                    "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs",
                    "customToolkitSettings": {
                        "commandLine": "cat $AZ_BATCHAI_MOUNT_ROOT/azurefileshare/setup.txt && "
                        "echo from the job > $AZ_BATCHAI_JOB_MOUNT_ROOT/bfs/result.txt"
                    },
                }
            }
        )
    )
    job = unique("job")
    ok(cli(shared_service, "job", "create", "-g", "rg", "-c", cluster, "-n", job, "-f", str(job_json),
           "--bfs-name", container))  # fmt: skip
    assert wait_job(shared_client, job)["executionState"] == "succeeded"
    assert read_log(shared_client, job, "stdout.txt") == "set up\n"  # the cluster's share, as its setup left it
    listed = shared_client.list(f"workspaces/default/datastores/{container}/files", path=".")
    assert "result.txt" in {e["name"] for e in listed}  # the job's container holds what it wrote, and its logs


def test_a_key_on_the_command_line_is_refused(shared_service):
    refused = cli(shared_service, "job", "create", "-n", "j", "-f", "job.json", "--storage-account-key", "s3cr3t")
    assert refused.returncode == 1 and "AZURE_BATCHAI_STORAGE_KEY" in refused.stderr
    assert "s3cr3t" not in refused.stderr


def test_an_unknown_flag_gets_the_subcommands_usage_and_a_guess(shared_service):
    wrong = cli(shared_service, "cluster", "create", "-n", "c", "--afs-nmae", "share")
    assert wrong.returncode == 2
    assert wrong.stderr.startswith("usage: batchai cluster create"), wrong.stderr
    assert "unrecognized arguments: --afs-nmae; did you mean --afs-name?" in wrong.stderr
    exec_flag = cli(shared_service, "job", "node", "exec", "-j", "j", "--exce", "ls")
    assert exec_flag.stderr.startswith("usage: batchai job node exec") and "did you mean --exec?" in exec_flag.stderr
    nothing_close = cli(shared_service, "job", "list", "--zzz")
    assert "usage: batchai job list" in nothing_close.stderr and "did you mean" not in nothing_close.stderr


def test_cluster_create_mounts_a_file_server_and_auto_scales_as_az_said(shared_service, unique, tmp_path):
    server, cluster = unique("nfs"), unique("autoscaled")
    (tmp_path / "export").mkdir()
    ok(cli(shared_service, "file-server", "create", "-n", server, "--path", str(tmp_path / "export")))
    created = cli(
        shared_service,
        "cluster", "create", "-n", cluster, "--min", "0", "--max", "2",
        "--nfs", server, "--nfs-mount-path", "shared", "-k", "ssh-rsa AAAA user@host", "-o", "json",
    )  # fmt: skip
    spec = json.loads(ok(created))["properties"]
    assert "-u/-p/-k/--generate-ssh-keys" in created.stderr and "AAAA" not in json.dumps(spec)
    assert spec["scaleSettings"]["autoScale"]["minimumNodeCount"] == 0
    assert spec["scaleSettings"]["autoScale"]["maximumNodeCount"] == 2
    (entry,) = spec["nodeSetup"]["mountVolumes"]["fileServers"]
    assert entry["fileServer"]["id"] == server and entry["relativeMountPath"] == "shared"
