"""What happens around an Azure cluster's VMs: the quota and size checked before anything is created,
ARM's errors shown as ARM wrote them, throttling ridden out, a Batch AI cluster.json + job.json pair,
a service killed mid-create that resumes the same operation, and auto-scale by queue 0 -> 2 -> 0
deleting the very instances that went idle."""

from __future__ import annotations

import json

from batchai_jupyter.errors import BatchAIError
from helpers.api import stdout_text, submit, wait_job
from helpers.cli import cli, ok, one_line_error
from helpers.ssh import PYTHON
from helpers.waits import wait_for

JOB_TIMEOUT = 120.0


def cluster_of(client, name: str) -> dict:
    return client.get(client.cluster_path("default", name))


def nodes_of(client, name: str) -> list[dict]:
    return client.list(client.cluster_path("default", name) + "/nodes")


def wait_nodes(client, name: str, idle: int, unusable: int = 0, timeout: float = 90.0) -> list[dict]:
    def reached():
        nodes = nodes_of(client, name)
        states = [n["state"] for n in nodes]
        return nodes if states.count("idle") == idle and states.count("unusable") == unusable else None

    return wait_for(reached, f"{name} to have {idle} idle and {unusable} unusable nodes", timeout=timeout)


def group_of(azure, cluster: str) -> str | None:
    return next((g["name"] for g in list(azure.arm.groups.values()) if g["tags"].get("cluster") == cluster), None)


def delete_and_wait(client, azure, name: str) -> None:
    client.delete_cluster("default", name)
    wait_for(lambda: name not in [c["name"] for c in client.list("workspaces/default/clusters")], f"{name} deleted")
    assert not [g for g in azure.arm.groups.values() if g["tags"].get("cluster") == name]


def test_quota_and_size_are_checked_before_anything_is_created(azure_service, azure):
    process, client = azure_service
    before = len(azure.arm.calls())
    # 5 x 6 vCPUs of the NCSv3 family, whose limit here is 24.
    line = one_line_error(
        cli(process, "cluster", "create", "-n", "big", "--backend", "azure", "-s", "Standard_NC6s_v3", "-t", "5")
    )
    for fragment in ("standardNCSv3Family", "30", "0 of the limit of 24", "Usage + quotas", "az quota"):
        assert fragment in line, line
    azure.arm.unavailable_sizes.add("standard_d4s_v5")
    try:
        line = one_line_error(
            cli(process, "cluster", "create", "-n", "nosku", "--backend", "azure", "-s", "Standard_D4s_v5", "-t", "1")
        )
    finally:
        azure.arm.unavailable_sizes.clear()
    assert "not available" in line and "Standard_D4s_v5" in line and "eastus" in line, line
    # Only reads: nothing was created, nothing costs.
    assert {method for method, _ in azure.arm.calls(before)} == {"GET"}, azure.arm.calls(before)
    # A misspelt option is a 400 naming it.
    spec = {"backend": "azure", "vmSize": "Standard_D2s_v5", "nodeCount": 1, "backendOptions": {"locaton": "westus"}}
    try:
        client.create_cluster("default", spec, "typo")
    except BatchAIError as refused:
        assert refused.status == 400 and "backendOptions.locaton" in refused.message, refused
    else:
        raise AssertionError("a misspelt option was accepted")


def test_an_allocation_failure_is_shown_as_arm_wrote_it(azure_service, azure):
    process, client = azure_service
    message = "Allocation failed. We do not have sufficient capacity for the requested VM size in this region."
    azure.arm.fail_next_create = {"code": "AllocationFailed", "message": message}
    # The CLI's own flags (the README's first Azure line): Spot, as the scale set's PUT says.
    ok(
        cli(
            process,
            "cluster",
            "create",
            "-n",
            "noroom",
            "--backend",
            "azure",
            "-s",
            "Standard_D2s_v5",
            "-t",
            "1",
            "--low-priority",
        )
    )
    nodes = wait_nodes(client, "noroom", idle=0, unusable=1)
    errors = json.dumps(nodes[0]["errors"])
    assert "AllocationFailed" in errors and message in errors, errors
    # The failed VM does not wait for the cluster's deletion: it went at once, by its instance id.
    group = group_of(azure, "noroom")
    vmss = azure.arm.scale_set(group, "nodes")
    wait_for(lambda: not vmss.instances, "the failed VM to be deleted")
    deletes = [
        b["instanceIds"]
        for m, p, b in azure.arm.bodies
        if m == "POST"
        and p.lower().endswith(f"{group.lower()}/providers/microsoft.compute/virtualmachinescalesets/nodes/delete")
    ]
    assert deletes == [["0"]] and vmss.body["sku"]["capacity"] == 0, (deletes, vmss.body["sku"])
    assert vmss.body["properties"]["virtualMachineProfile"]["priority"] == "Spot"
    delete_and_wait(client, azure, "noroom")


BATCHAI_CLUSTER = {
    "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/cluster.json",
    "properties": {
        "vmSize": "Standard_D2s_v5",
        "vmPriority": "dedicated",
        "scaleSettings": {"manual": {"targetNodeCount": 1, "nodeDeallocationOption": "requeue"}},
        "virtualMachineConfiguration": {
            "imageReference": {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2204", "version": "latest"}
        },
        "nodeSetup": {"setupTask": {"commandLine": "echo prepared > $AZ_BATCHAI_MOUNT_ROOT/../prepared.txt"}},
        "userAccountSettings": {
            "adminUserName": "azureuser",
            "adminUserSshPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBatchAIUserKeyForTheTestsOnly user@laptop",
            "adminUserPassword": "NeverKept-Pa55word!",
        },
    },
}

BATCHAI_JOB = {
    "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/job.json",
    "properties": {
        "nodeCount": 1,
        "customToolkitSettings": {
            "commandLine": f"{PYTHON} -c \"import os; print('on', os.environ['AZ_BATCHAI_NODE_NAME'] if "
            "'AZ_BATCHAI_NODE_NAME' in os.environ else 'node', open(os.path.expanduser("
            "'~/batchai-node/prepared.txt')).read().strip())\""
        },
        "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT",
    },
}


def test_batchai_cluster_json_and_job_json_through_429s(azure_service, azure, tmp_path):
    process, client = azure_service
    (tmp_path / "cluster.json").write_text(json.dumps(BATCHAI_CLUSTER))
    (tmp_path / "job.json").write_text(json.dumps(BATCHAI_JOB))
    azure.arm.throttle_next = 3  # Resource Manager says "slow down" (429, Retry-After) three times
    ok(cli(process, "cluster", "create", "-n", "fromjson", "--backend", "azure", "-f", str(tmp_path / "cluster.json")))
    wait_nodes(client, "fromjson", idle=1)
    assert azure.arm.throttled == 3
    put = next(
        body
        for method, path, body in azure.arm.bodies
        if method == "PUT"
        and path.lower().endswith("/virtualmachinescalesets/nodes")
        and group_of(azure, "fromjson") in path
    )
    profile = put["properties"]["virtualMachineProfile"]
    assert profile["storageProfile"]["imageReference"]["offer"] == "ubuntu-hpc"
    assert "priority" not in profile, profile  # dedicated
    keys = [k["keyData"] for k in profile["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"]]
    assert BATCHAI_CLUSTER["properties"]["userAccountSettings"]["adminUserSshPublicKey"] in keys
    shown = ok(cli(process, "cluster", "show", "-n", "fromjson")) + json.dumps(azure.arm.bodies)
    assert "NeverKept-Pa55word!" not in shown
    ok(cli(process, "experiment", "create", "-n", "migrated"))
    ok(
        cli(
            process,
            "job",
            "create",
            "-e",
            "migrated",
            "-n",
            "hello",
            "-c",
            "fromjson",
            "-f",
            str(tmp_path / "job.json"),
        )
    )
    job = wait_job(client, "hello", timeout=JOB_TIMEOUT, experiment="migrated")
    assert job["executionState"] == "succeeded", job["executionInfo"]
    delete_and_wait(client, azure, "fromjson")


def test_a_service_killed_mid_create_resumes_the_same_operation(azure_service, azure):
    process, client = azure_service
    azure.arm.hold.clear()  # the scale set's create stays in progress
    try:
        client.create_cluster("default", {"backend": "azure", "vmSize": "Standard_D2s_v5", "nodeCount": 1}, "resumed")
        wait_for(
            lambda: group_of(azure, "resumed") and azure.arm.scale_set(group_of(azure, "resumed"), "nodes"),
            "the scale set's create to start",
        )
        group = group_of(azure, "resumed")
        # The service answers while the create is in flight on the cluster's worker.
        client.create_cluster("default", {"backend": "local", "nodeCount": 1}, "beside")
        submit(client, "beside-job", "beside", {"nodeCount": 1, "customToolkitSettings": {"commandLine": "true"}})
        process.kill()
        client = process.start()
    finally:
        azure.arm.hold.set()
    wait_nodes(client, "resumed", idle=1)
    creates = [
        p
        for m, p in azure.arm.calls()
        if m == "PUT"
        and p.lower().endswith(f"{group.lower()}/providers/microsoft.compute/virtualmachinescalesets/nodes")
    ]
    assert len(creates) == 1, creates  # resumed from its continuation token, not made twice
    assert wait_job(client, "beside-job")["executionState"] == "succeeded"
    client.delete_cluster("default", "beside")
    # The delete answers at once; the cluster is `deleting` until its resource group is gone, also
    # across a kill -9 of the service.
    azure.arm.hold.clear()
    try:
        client.delete_cluster("default", "resumed")
        wait_for(
            lambda: ("DELETE", group.lower()) in [(m, p.lower().rsplit("/", 1)[-1]) for m, p in azure.arm.calls()],
            "the group's deletion",
        )
        assert cluster_of(client, "resumed")["provisioningState"] == "deleting"
        process.kill()
        client = process.start()
        assert cluster_of(client, "resumed")["provisioningState"] == "deleting"
    finally:
        azure.arm.hold.set()
    wait_for(lambda: "resumed" not in [c["name"] for c in client.list("workspaces/default/clusters")], "the deletion")
    assert group.lower() not in azure.arm.groups


def test_auto_scale_by_queue_from_zero_to_two_and_back(azure_service, azure):
    process, client = azure_service
    spec = {
        "backend": "azure",
        "vmSize": "Standard_D2s_v5",
        "minNodes": 0,
        "maxNodes": 2,
        "idleSecondsBeforeScaledown": 1,
    }
    client.create_cluster("default", spec, "auto")
    assert not [g for g in azure.arm.groups.values() if g["tags"].get("cluster") == "auto"]  # nothing at zero
    submit(
        client,
        "pair",
        "auto",
        {
            "nodeCount": 2,
            "customToolkitSettings": {
                "commandLine": f"{PYTHON} -c \"print('rank', __import__('os').environ.get('AZ_BATCHAI_TASK_INDEX'))\""
            },
        },
    )
    job = wait_job(client, "pair", timeout=JOB_TIMEOUT)
    assert job["executionState"] == "succeeded", job["executionInfo"]
    assert stdout_text(client, "pair")
    group = group_of(azure, "auto")
    vmss = azure.arm.scale_set(group, "nodes")
    wait_for(lambda: vmss.body["sku"]["capacity"] == 0, "the idle VMs to be deleted", timeout=60)
    assert not nodes_of(client, "auto")
    assert vmss.capacities[0] == 2 and vmss.capacities[-1] == 0 and max(vmss.capacities) == 2, vmss.capacities
    assert len(vmss.instances) == 0 and vmss.body["sku"]["capacity"] == 0
    # Each idle node went by its own instance id (never "any two" for Azure to pick).
    deletes = [
        b
        for m, p, b in azure.arm.bodies
        if m == "POST"
        and p.lower().endswith(f"{group.lower()}/providers/microsoft.compute/virtualmachinescalesets/nodes/delete")
    ]
    assert sorted(i for b in deletes for i in b["instanceIds"]) == ["0", "1"], deletes
    delete_and_wait(client, azure, "auto")


def test_the_magic_makes_a_spot_cluster(azure_service, azure, azure_shell):
    _, client = azure_service
    azure_shell.run_line_magic(
        "batchai_cluster",
        "create magic --backend azure --vm-size Standard_D2s_v5 --nodes 1 --low-priority --no-monitor",
    )
    wait_nodes(client, "magic", idle=1)
    shown = cluster_of(client, "magic")["properties"]
    assert shown["backend"] == "azure" and shown["vmPriority"] == "lowpriority", shown
    vmss = azure.arm.scale_set(group_of(azure, "magic"), "nodes")
    assert vmss.body["properties"]["virtualMachineProfile"]["priority"] == "Spot" and len(vmss.instances) == 1
    delete_and_wait(client, azure, "magic")
