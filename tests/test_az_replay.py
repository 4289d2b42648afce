"""azure-cli's own batchai scenario tests (test_batchai_scenario.py, test_batchai_live.py of the 2018-05-01
era) replayed with the `batchai` console script: the same command lines, `-g/-w/-e` and all, and the checks
those tests made on what came back. Only the job.json's containerSettings is left out (its Docker Hub image
is out of reach here) and the storage is a local stand-in for the share and the container."""

from __future__ import annotations

import json

from helpers.cli import cli, ok
from helpers.waits import wait_for

CLUSTER_JSON = {"properties": {"vmSize": "STANDARD_D1", "scaleSettings": {"manual": {"targetNodeCount": 1}}}}
JOB_JSON = {  # the scenario's job_referencing_file_systems.json, less containerSettings
    "properties": {
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs",
        "outputDirectories": [
            {"id": "OUTPUT", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs", "pathSuffix": "output", "type": "custom"}
        ],
        "nodeCount": 1,
        "toolType": "custom",
        "customToolkitSettings": {"commandLine": "echo hi | tee $AZ_BATCHAI_OUTPUT_OUTPUT/result.txt"},
    }
}


def test_the_manual_scale_and_job_level_mounting_scenarios(shared_service, unique, tmp_path):
    def az(*words: str) -> str:
        return ok(cli(shared_service, *words))

    def az_json(*words: str):
        return json.loads(az(*words, "-o", "json"))

    rg, ws = unique("rg"), unique("workspace")
    share, container = unique("share"), unique("container")
    (tmp_path / "cluster.json").write_text(json.dumps(CLUSTER_JSON))
    (tmp_path / "job.json").write_text(json.dumps(JOB_JSON))
    (tmp_path / "key.txt").write_text("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 demo@host\n")
    scope = ("-g", rg, "-w", ws)

    assert az_json("workspace", "create", "-g", rg, "-n", ws, "-l", "eastus")["name"] == ws
    assert [w["name"] for w in az_json("workspace", "list", "-g", rg)] == [ws]  # length(@) == 1
    cluster = az_json(
        "cluster", "create", *scope, "-n", "cluster", "-f", str(tmp_path / "cluster.json"),
        "--afs-name", share, "--bfs-name", container, "-u", "DemoUser", "-k", str(tmp_path / "key.txt"),
    )  # fmt: skip
    assert cluster["name"] == "cluster" and cluster["properties"]["vmSize"] == "STANDARD_D1"
    assert cluster["properties"]["scaleSettings"]["manual"]["targetNodeCount"] == 1
    mounts = cluster["properties"]["nodeSetup"]["mountVolumes"]
    assert mounts["azureFileShares"][0]["azureFileUrl"].endswith(f"/{share}")
    assert mounts["azureFileShares"][0]["relativeMountPath"] == "afs"
    assert mounts["azureBlobFileSystems"][0]["containerName"] == container
    assert mounts["azureBlobFileSystems"][0]["relativeMountPath"] == "bfs"
    assert "AAAAB3Nza" not in json.dumps(cluster)
    assert az_json("experiment", "create", *scope, "-n", "experiment")["name"] == "experiment"
    assert "experiment" in [e["name"] for e in az_json("experiment", "list", *scope)]

    for job in ("job", "job2"):
        created = az_json(
            "job", "create", "-c", "cluster", *scope, "-e", "experiment", "-n", job, "-f", str(tmp_path / "job.json"),
            "--afs-name", share, "--bfs-name", container,
        )  # fmt: skip
        assert created["name"] == job and created["executionState"] in ("queued", "running", "succeeded")
        az("job", "wait", *scope, "-e", "experiment", "-n", job)
        shown = az_json("job", "show", *scope, "-e", "experiment", "-n", job)
        command = shown["properties"]["customToolkitSettings"]["commandLine"]
        assert command == "echo hi | tee $AZ_BATCHAI_OUTPUT_OUTPUT/result.txt"
        assert shown["executionState"] == "succeeded", shown
        assert shown["executionInfo"]["exitCode"] == 0 and not shown["executionInfo"]["errors"]
        logs = az_json("job", "file", "list", *scope, "-e", "experiment", "-j", job, "-d", "stdouterr")
        assert {"execution.log", "stderr.txt", "stdout.txt"} <= {f["name"] for f in logs}, logs
        assert [f["contentLength"] for f in logs if f["name"] == "stdout.txt"] == [3]
        assert all(f["downloadUrl"] for f in logs)
        outputs = az_json("job", "file", "list", *scope, "-e", "experiment", "-j", job, "-d=OUTPUT")
        assert [(f["name"], f["contentLength"]) for f in outputs] == [("result.txt", 3)] and outputs[0]["downloadUrl"]
        assert az("job", "file", "stream", *scope, "-e", "experiment", "-j", job, "-f", "stdout.txt") == "hi\n"
        if job == "job":  # between the two jobs: down to no nodes and up again
            az("cluster", "resize", *scope, "-n", "cluster", "-t", "0")
            wait_for(lambda: az_json("cluster", "show", *scope, "-n", "cluster")["currentNodeCount"] == 0, "no nodes")
            az("cluster", "resize", *scope, "-n", "cluster", "-t", "1")

    # the live scenario's `cluster node exec` names no node: the cluster's first available one runs it
    said = az("cluster", "node", "exec", *scope, "-c", "cluster", "--exec", "echo hi from $AZ_BATCHAI_NODE_NAME")
    (node,) = [n["nodeId"] for n in az_json("cluster", "node", "list", *scope, "-c", "cluster")]
    assert said == f"hi from {node}\n"

    usages = az_json("list-usages", "-l", "eastus")
    assert any(u["name"] == "Clusters" and u["currentValue"] >= 1 for u in usages), usages
    assert "Cluster" in az("list-usages", "-l", "eastus", "-o", "table")

    az("cluster", "delete", *scope, "-n", "cluster", "-y")
    wait_for(lambda: az_json("cluster", "list", *scope) == [], "the cluster to be deleted")
    for job in ("job", "job2"):
        az("job", "delete", *scope, "-e", "experiment", "-n", job, "-y")
    assert az_json("job", "list", *scope, "-e", "experiment") == []


def test_a_resource_group_that_arm_would_refuse_is_refused_at_workspace_create(shared_service, unique):
    refused = cli(shared_service, "workspace", "create", "-g", "my/rg", "-n", unique("ws"))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "resourceGroup: 'my/rg' is not valid" in refused.stderr and "1-90 letters" in refused.stderr
