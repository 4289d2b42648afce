"""An Azure Spot cluster's whole story, from a notebook, against the fake Resource Manager over HTTPS
with the unmodified SDK clients: `%batchai_cluster create` from a Batch AI cluster.json makes a Spot
scale set (a service principal's token from the fake Entra ID) whose VMs (real sshd hosts) are the
nodes; 2-node PyTorch DDP and MPI jobs run across them; a Spot eviction announced mid-job in the VM's
scheduled events requeues the job before the VM goes, and it resumes from its checkpoint on another
VM; `%batchai_cluster resize --nodes 0` deletes the VMs and `%batchai_cluster delete` the resource
group. The tests run in this order, on one cluster."""

from __future__ import annotations

import base64
import json
import os

import pytest

from helpers.api import job_folder, read_log, stdout_text, submit, wait_job
from helpers.azure import CLIENT_SECRET
from helpers.cli import cli, ok
from helpers.ssh import PYTHON, mpi_expected, mpi_lines, put_in_datastore, submit_ddp_job, submit_mpi_job
from helpers.waits import wait_for

JOB_TIMEOUT = 180.0


def nodes_of(client, cluster: str) -> list[dict]:
    return client.list(client.cluster_path("default", cluster) + "/nodes")


def wait_idle(client, name: str, count: int, timeout: float = 120.0) -> dict:
    def ready():
        cluster = client.get(client.cluster_path("default", name))
        counts = cluster["nodeStateCounts"]
        if counts["unusableNodeCount"]:
            raise AssertionError(f"a node of {name} is unusable: {[n['errors'] for n in nodes_of(client, name)]}")
        return cluster if counts["idleNodeCount"] + counts["runningNodeCount"] == count else None

    return wait_for(ready, f"Azure cluster {name} to have {count} idle nodes", timeout=timeout)


def vmss_put(azure, group_part: str) -> dict:
    return next(
        body
        for method, path, body in azure.arm.bodies
        if method == "PUT" and "/virtualmachinescalesets/" in path.lower() and group_part in path
    )


# Batch AI's cluster.json as a Batch AI user has it: two low-priority (Spot) nodes.
SPOT_CLUSTER_JSON = {
    "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/cluster.json",
    "properties": {
        "vmSize": "Standard_D2s_v5",
        "vmPriority": "lowpriority",
        "scaleSettings": {"manual": {"targetNodeCount": 2, "nodeDeallocationOption": "requeue"}},
    },
}


@pytest.fixture(scope="module")
def spot_cluster(azure_service, azure_shell):
    """`%batchai_cluster create spot --backend azure -f cluster.json`, as a notebook cell has it."""
    _, client = azure_service
    with open("cluster.json", "w") as handle:  # the notebook's folder
        json.dump(SPOT_CLUSTER_JSON, handle)
    azure_shell.run_line_magic("batchai_cluster", "create spot --backend azure -f cluster.json --no-monitor")
    wait_idle(client, "spot", 2)
    return "spot"


def test_a_spot_cluster_is_a_scale_set_whose_vms_are_the_nodes(azure_service, azure, spot_cluster):
    process, client = azure_service
    cluster = client.get(client.cluster_path("default", spot_cluster))
    group = next(g for g in azure.arm.groups.values() if g["tags"].get("cluster") == spot_cluster)
    vmss = azure.arm.scale_set(group["name"], "nodes")
    assert vmss is not None and vmss.body["sku"]["capacity"] == 2 and len(vmss.instances) == 2
    # What went over the wire: Spot, capacity 2, cloud-init, the service's own public key, no password.
    put = vmss_put(azure, group["name"])
    profile = put["properties"]["virtualMachineProfile"]
    assert profile["priority"] == "Spot" and profile["evictionPolicy"] == "Delete", profile
    assert profile["billingProfile"] == {"maxPrice": -1}
    assert put["properties"]["overprovision"] is False and put["properties"]["orchestrationMode"] == "Uniform"
    assert base64.b64decode(profile["osProfile"]["customData"]).startswith(b"#cloud-config")
    assert "adminPassword" not in profile["osProfile"]
    assert profile["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"] is True
    keys = profile["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"]
    assert len(keys) == 1 and keys[0]["keyData"].startswith("ssh-ed25519 "), keys
    # Its nodes are the instances' addresses, logged in to as the admin user with the service's key.
    addresses = {i.machine.address for i in vmss.instances.values()}
    nodes = nodes_of(client, spot_cluster)
    assert {n["ipAddress"] for n in nodes} == addresses and all(n["state"] == "idle" for n in nodes), nodes
    # `cluster show` tells what one node of the size has.
    shown = json.loads(ok(cli(process, "cluster", "show", "-n", spot_cluster, "-o", "json")))["properties"]
    assert (shown["cpusPerNode"], shown["memoryMbPerNode"], shown["gpusPerNode"]) == (2, 8192, 0), shown
    assert shown["vmSize"] == "Standard_D2s_v5" and shown["vmPriority"] == "lowpriority"
    # Every ARM call carried the token the fake's Entra ID gave the service principal.
    assert {h for h in azure.arm.auth_headers if h} == {f"Bearer {_token()}"}
    assert azure.arm.token_requests and azure.arm.token_requests[0]["client_id"] == "batchai-test-app"
    # The secrets are nowhere the user can see: not in the cluster, not in the service's log.
    shown = json.dumps(cluster) + json.dumps(nodes) + process.log()
    private_key = open(_private_key(process.home, cluster)).read()
    assert CLIENT_SECRET not in shown and "PRIVATE KEY" not in shown and private_key not in shown


def _token() -> str:
    from helpers.fake_arm import TOKEN

    return TOKEN


def _private_key(home: str, cluster: dict) -> str:
    import glob

    found = glob.glob(f"{home}/azure/clusters/*/id_ed25519")
    assert found, "the service keeps the cluster's key pair"
    return found[0]


def test_pytorch_ddp_across_two_vms(azure_service, azure, spot_cluster):
    process, client = azure_service
    submit_ddp_job(client, process.home, spot_cluster)
    job = wait_job(client, "ddp", timeout=JOB_TIMEOUT)
    logs = {r: read_log(client, "ddp", f"stderr-{r}.txt") for r in (0, 1)}
    assert job["executionState"] == "succeeded", (job["executionInfo"], logs)
    records = []
    for rank in (0, 1):
        text = read_log(client, "ddp", f"stdout-{rank}.txt")
        records += [json.loads(line[7:]) for line in text.splitlines() if line.startswith("RECORD ")]
    assert sorted(r["rank"] for r in records) == [0, 1] and all(r["in_sync"] for r in records), records
    addresses = {n["ipAddress"] for n in nodes_of(client, spot_cluster)}
    assert {r["address"] for r in records} == addresses, f"the ranks must run on both VMs: {records}"
    assert len(client.read_job_file("default", "default", "ddp", "model.pt", "MODEL")) > 0


def test_mpi_across_two_vms(azure_service, azure, spot_cluster):
    process, client = azure_service
    submit_mpi_job(client, process.home, spot_cluster, azure.hosts.subnet)
    job = wait_job(client, "mpi", timeout=JOB_TIMEOUT)
    assert job["executionState"] == "succeeded", (job["executionInfo"], read_log(client, "mpi", "stderr.txt"))
    lines = mpi_lines(client)
    assert lines == mpi_expected(n["ipAddress"] for n in nodes_of(client, spot_cluster)), lines


CHECKPOINTED = """
    import os, sys, time
    checkpoint = os.path.join(os.environ["AZ_BATCHAI_CHECKPOINT_DIR"], "step")
    start = int(open(checkpoint).read()) if os.path.exists(checkpoint) else 0
    attempt = os.environ["AZ_BATCHAI_JOB_ATTEMPT"]
    print("attempt", attempt, "resumes at", start, flush=True)
    pace = 1.0 if attempt == "1" else 0.05  # the first is evicted long before it could finish
    for step in range(start, 40):
        with open(checkpoint, "w") as handle:
            handle.write(str(step))
        time.sleep(pace)
    print("done at", step, flush=True)
"""


def test_a_spot_eviction_requeues_the_job_which_succeeds_on_a_replacement_vm(azure_service, azure, spot_cluster):
    process, client = azure_service
    scripts = put_in_datastore(process.home, "inputs/spot", {"train.py": CHECKPOINTED})
    submit(
        client,
        "evicted",
        spot_cluster,
        {
            "nodeCount": 1,
            "maxRetries": 1,
            "inputDirectories": [{"id": "SCRIPTS", "path": scripts}],
            "customToolkitSettings": {"commandLine": f"{PYTHON} $AZ_BATCHAI_INPUT_SCRIPTS/train.py"},
        },
    )
    collected = os.path.join(job_folder(process.home, client, "evicted"), "checkpoints", "step")

    def checkpoint() -> int:  # the step the service holds (copied back from the VM while the job runs)
        with open(collected) as handle:
            return int(handle.read() or 0)

    wait_for(lambda: checkpoint() >= 2, "a checkpoint to come back from the VM", timeout=60)
    running = [n for n in nodes_of(client, spot_cluster) if n["state"] == "running"]
    assert len(running) == 1, running
    group = _group_of(azure, spot_cluster)
    vmss = azure.arm.scale_set(group, "nodes")
    victim = next(i for i in vmss.instances.values() if i.machine.address == running[0]["ipAddress"])
    # Azure announces the eviction in the VM's scheduled events (30 s or more ahead): the watcher on the
    # VM sees it, the heartbeat carries it, and the job is requeued while the VM still runs.
    azure.arm.announce_eviction(group, "nodes", victim.iid)

    def warned():
        node = next((n for n in nodes_of(client, spot_cluster) if n["ipAddress"] == running[0]["ipAddress"]), None)
        return node if node is not None and node["state"] == "unusable" else None

    node = wait_for(warned, "the node to learn of its eviction from the scheduled events", timeout=60)
    assert "Preempt" in json.dumps(node["errors"]), node["errors"]
    # Requeued (a lost node costs no retry), and running again on the other VM ...
    again = wait_for(
        lambda: [n for n in nodes_of(client, spot_cluster) if n["state"] == "running"],
        "the job to run again on the other VM",
        timeout=60,
    )
    assert [n["ipAddress"] for n in again] != [running[0]["ipAddress"]], again
    assert client.job("default", "default", "evicted")["attempt"] == 2
    assert victim.iid in vmss.instances  # ... before the VM disappeared
    azure.arm.evict(group, "nodes", victim.iid)  # Azure takes the VM back: it is gone from the scale set
    job = wait_job(client, "evicted", timeout=JOB_TIMEOUT)
    assert job["executionState"] == "succeeded", job["executionInfo"]
    text = stdout_text(client, "evicted")
    # attempt 1's log was set aside (stdouterr/attempt-1/) and none of it came back beside attempt 2's
    assert "attempt 2 resumes at" in text and "resumes at 0" not in text and "done at 39" in text, text
    # The cluster is back at its target: a new instance replaced the evicted one.
    wait_idle(client, spot_cluster, 2)
    assert victim.iid not in vmss.instances and len(vmss.instances) == 2 and vmss.body["sku"]["capacity"] == 2


def _group_of(azure, cluster: str) -> str:
    return next(g["name"] for g in azure.arm.groups.values() if g["tags"].get("cluster") == cluster)


def test_from_the_notebook_scale_to_zero_then_delete(azure_service, azure, azure_shell, spot_cluster):
    _, client = azure_service
    group = _group_of(azure, spot_cluster)
    vmss = azure.arm.scale_set(group, "nodes")
    azure_shell.run_line_magic("batchai_cluster", f"resize {spot_cluster} --nodes 0 --no-monitor")
    wait_for(lambda: not nodes_of(client, spot_cluster) and not vmss.instances, "the cluster to scale to zero")
    assert vmss.body["sku"]["capacity"] == 0 and vmss.capacities[-1] == 0, vmss.capacities
    assert group.lower() in azure.arm.groups  # at zero the cluster (its group, network, scale set) stays
    azure_shell.run_line_magic("batchai_cluster", f"delete {spot_cluster} -y")

    def gone():
        try:
            client.get(client.cluster_path("default", spot_cluster))
        except Exception as error:  # the cluster is listed until its resource group is gone
            if getattr(error, "status", None) == 404:
                return True
            raise
        return False

    wait_for(gone, "the cluster to be deleted", timeout=60)
    assert group.lower() not in azure.arm.groups and azure.arm.scale_set(group, "nodes") is None
    assert ("DELETE", f"/subscriptions/{_subscription()}/resourcegroups/{group}") in [
        (m, p.lower().replace(group.lower(), group)) for m, p in azure.arm.log
    ]


def _subscription() -> str:
    from helpers.azure import SUBSCRIPTION

    return SUBSCRIPTION
