"""Batch AI 2018-05-01's REST examples replayed in order against a real `batchai serve` (plain HTTP, as
ARM's own examples are written): each request as published is accepted with one of the example's
status codes, and each response has the example response's shape (every field it shows, of the same
JSON type, but those listed below that this service does not have) and reads as the SDK's model.

The subscription is the service's (the tests configure another one than the examples' zeros)."""

from __future__ import annotations

from typing import Any

from azure.mgmt.batchai import models
from msrest import Deserializer

from helpers import batchai_examples as ex
from helpers.arm import SUBSCRIPTION
from helpers.waits import wait_for

DESERIALIZE = Deserializer({k: v for k, v in models.__dict__.items() if isinstance(v, type)})
BASE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{ex.RG}/providers/Microsoft.BatchAI/workspaces/{ex.WS}"

# What a response here lacks of an example's, and why.
NO_VM = {
    # Nodes are this service's (local, SSH, Slurm), not Azure VMs: no image, admin account or subnet to show.
    "properties.virtualMachineConfiguration",
    "properties.userAccountSettings",
    "properties.subnet",
    "properties.allocationStateTransitionTime",  # not recorded
    "location",  # a cluster is where its workspace is
}
NO_FILE_SERVER_VM = {
    # A file server here is a shared directory, not a VM with data disks (docs/arm-api.md).
    "properties.vmSize",
    "properties.sshConfiguration",
    "properties.dataDisks",
    "properties.subnet",
    "properties.creationTime",
    "properties.provisioningStateTransitionTime",
    "properties.mountSettings.fileServerPublicIP",
    "properties.mountSettings.fileServerInternalIP",
}
JOB_GAPS = {
    "properties.priority",  # the examples' name; the swagger's (and ours) is schedulingPriority
    "properties.containerSettings",  # jobs run on the nodes themselves: accepted and not kept
}
NO_SSH_PORT = {"value[].port"}  # local nodes take no SSH logins


def assert_shape(ours: Any, example: Any, missing_ok: set[str], where: str = "") -> None:
    if isinstance(example, dict):
        assert isinstance(ours, dict), f"{where or 'body'}: {ours!r} is not an object"
        for key, value in example.items():
            path = f"{where}.{key}" if where else key
            if path in missing_ok:
                continue
            assert key in ours, f"{path}: missing from {sorted(ours)}"
            assert_shape(ours[key], value, missing_ok, path)
    elif isinstance(example, list):
        assert isinstance(ours, list), f"{where}: {ours!r} is not a list"
        if example:
            for item in ours:
                assert_shape(item, example[0], missing_ok, f"{where}[]")
    elif isinstance(example, bool) or example is None:
        assert ours is None or isinstance(ours, bool), f"{where}: {ours!r}"
    elif isinstance(example, (int, float)):
        assert isinstance(ours, (int, float)) and not isinstance(ours, bool), f"{where}: {ours!r} is not a number"
    else:
        assert isinstance(ours, str), f"{where}: {ours!r} is not a string"


def check(response, statuses: set[int], example=None, model: str | None = None, missing_ok: set[str] = frozenset()):
    assert response.status_code in statuses, f"{response.request.method} {response.url}: {response.text}"
    body = response.json() if response.content else None
    if example is None:
        return body
    assert_shape(body, example, set(missing_ok))
    if model:
        assert DESERIALIZE(model, body) is not None
    return body


def created(arm, path: str, body: dict, example: dict, model: str, missing_ok: set[str] = frozenset()):
    """PUT as the example does: 202 (or 200), then the resource."""
    response = arm.request("PUT", path, body)
    check(response, {200, 202})
    if response.status_code == 202:
        arm.follow(response)
    return check(arm.request("GET", path), {200}, example, model, missing_ok)


def deleted(arm, path: str) -> None:
    response = arm.request("DELETE", path)
    check(response, {200, 202, 204})
    if response.status_code == 202:
        assert arm.follow(response).status_code in (200, 204)
    assert arm.request("GET", path).status_code == 404


def test_the_2018_05_01_examples_replayed_in_order(arm):
    # Workspaces: PutWorkspace, GetWorkspace, PatchWorkspace, ListWorkspace, ListWorkspaceByResourceGroup
    created(arm, BASE, ex.PUT_WORKSPACE, ex.WORKSPACE_BODY, "Workspace")
    patched = check(arm.request("PATCH", BASE, ex.PATCH_WORKSPACE), {200}, ex.WORKSPACE_BODY, "Workspace")
    assert patched["tags"] == {"key1": "value1"}
    for listing in (f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.BatchAI/workspaces", BASE.rsplit("/", 1)[0]):
        body = check(arm.request("GET", listing), {200}, {"value": [ex.WORKSPACE_BODY]}, "WorkspaceListResult")
        assert ex.WS in [w["name"] for w in body["value"]]

    # Experiments: PutExperiment, GetExperiment, ListExperimentByWorkspace
    experiment = f"{BASE}/experiments/{ex.EXP}"
    created(arm, experiment, ex.PUT_EXPERIMENT, ex.EXPERIMENT_BODY, "Experiment")
    check(arm.request("GET", f"{BASE}/experiments"), {200}, {"value": [ex.EXPERIMENT_BODY]}, "ExperimentListResult")

    # File servers: PutFileServer (also under the name PutCluster mounts), GetFileServer, ListFileServerByWorkspace
    for name in (ex.FILE_SERVER, ex.MOUNTED_FILE_SERVER):
        created(
            arm, f"{BASE}/fileServers/{name}", ex.PUT_FILE_SERVER, ex.FILE_SERVER_BODY, "FileServer", NO_FILE_SERVER_VM
        )
    body = check(
        arm.request("GET", f"{BASE}/fileServers"),
        {200},
        {"value": [ex.FILE_SERVER_BODY]},
        "FileServerListResult",
        {f"value[].{path}" for path in NO_FILE_SERVER_VM},
    )
    assert {ex.FILE_SERVER, ex.MOUNTED_FILE_SERVER} <= {f["name"] for f in body["value"]}

    # Clusters: PutCluster, GetCluster, ListClusterByWorkspace, ClusterListRemoteLoginInfo
    cluster = f"{BASE}/clusters/{ex.CLUSTER}"
    shown = created(arm, cluster, ex.PUT_CLUSTER, ex.CLUSTER_BODY, "Cluster", NO_VM)
    assert shown["properties"]["nodeSetup"]["mountVolumes"]["azureFileShares"][0]["credentials"]["accountKey"] == "***"
    check(
        arm.request("GET", f"{BASE}/clusters"),
        {200},
        {"value": [ex.CLUSTER_BODY]},
        "ClusterListResult",
        {f"value[].{path}" for path in NO_VM},
    )

    def logins():
        body = arm.request("POST", f"{cluster}/listRemoteLoginInformation").json()
        return body if body["value"] else None

    body = wait_for(logins, "the cluster's node", timeout=120)
    assert_shape(body, {"value": [ex.REMOTE_LOGIN]}, {"value[].port"})

    # Jobs: PutJob, GetJob, ListJobByExperiment, ListOutputFiles, JobListRemoteLoginInfo, TerminateJob
    job = f"{experiment}/jobs/{ex.JOB}"
    put_job = {"properties": dict(ex.PUT_JOB["properties"])}
    # The example runs in Docker Hub's `ubuntu`, out of reach here (a job whose image cannot be pulled fails,
    # as it should): this replay runs it on the node; tests/containers runs Batch AI jobs in images.
    del put_job["properties"]["containerSettings"]
    created(arm, job, put_job, {"properties": {"executionState": "queued"}}, "Job")

    def started():  # the example shows a job that has started (its executionInfo.startTime)
        body = arm.request("GET", job).json()
        return body if body["properties"]["executionState"] != "queued" else None

    wait_for(started, "the example job to start", timeout=120)
    shown = check(arm.request("GET", job), {200}, ex.JOB_BODY, "Job", JOB_GAPS)
    assert shown["properties"]["jobOutputDirectoryPathSegment"].startswith(
        f"{SUBSCRIPTION}/{ex.RG}/workspaces/{ex.WS}/experiments/{ex.EXP}/jobs/{ex.JOB}/"
    )
    check(
        arm.request("GET", f"{experiment}/jobs"),
        {200},
        {"value": [ex.JOB_BODY]},
        "JobListResult",
        {f"value[].{path}" for path in JOB_GAPS},
    )

    def ended():
        state = arm.request("GET", job).json()["properties"]["executionState"]
        return state if state in ("succeeded", "failed") else None

    assert wait_for(ended, "the example job to end", timeout=120) == "succeeded"
    files = check(
        arm.request("POST", f"{job}/listOutputFiles", outputdirectoryid="stdouterr"),
        {200},
        {"value": [ex.OUTPUT_FILE]},
        "FileListResult",
    )
    stdout = next(f for f in files["value"] if f["name"] == "stdout.txt")
    assert arm.session.get(stdout["downloadUrl"], headers={"Authorization": ""}).text == "hi\n"
    outputs = arm.request("POST", f"{job}/listOutputFiles", outputdirectoryid="OUTPUTS").json()
    assert_shape(outputs, {"value": [ex.OUTPUT_FILE]}, set())
    assert [f["name"] for f in outputs["value"]] == ["hi.txt"]
    check(
        arm.request("POST", f"{job}/listRemoteLoginInformation"), {200}, {"value": [ex.REMOTE_LOGIN]}, None, NO_SSH_PORT
    )
    terminated = arm.request("POST", f"{job}/terminate")
    check(terminated, {200, 202})
    assert arm.follow(terminated).status_code in (200, 204)

    # PatchCluster (auto-scale), then the deletes: DeleteJob, DeleteCluster, DeleteFileServer, DeleteExperiment,
    # DeleteWorkspace
    patched = check(arm.request("PATCH", cluster, ex.PATCH_CLUSTER), {200}, None)
    assert patched["properties"]["scaleSettings"]["autoScale"] == {
        "minimumNodeCount": 0,
        "maximumNodeCount": 10,
        "initialNodeCount": 0,
    }
    for path in (job, cluster, f"{BASE}/fileServers/{ex.FILE_SERVER}", experiment, BASE):
        deleted(arm, path)

    # ListUsages, ListOperation
    usages = check(
        arm.request("GET", f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.BatchAI/locations/eastus/usages"),
        {200},
        {"value": [ex.USAGE]},
        "ListUsagesResult",
    )
    assert "Clusters" in [u["name"]["value"] for u in usages["value"]]
    check(
        arm.request("GET", "/providers/Microsoft.BatchAI/operations"),
        {200},
        {"value": [ex.OPERATION]},
        "OperationListResult",
    )
