"""`batchai cluster create --backend ssh --hosts ... --key ...`, a Batch AI cluster.json with
backendOptions, `cluster node list` (IP, SSH port and each host's load) and `cluster node exec`, through the real
console script against a real service and real sshd hosts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers.ssh import PYTHON
from helpers.waits import wait_for


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from helpers.service import ServiceProcess

    base = tmp_path_factory.mktemp("ssh-cli")
    process = ServiceProcess(str(base / "home"), str(base / "runtime"))
    process.start()
    yield process
    process.stop()


def batchai(service, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    script = shutil.which("batchai") or os.path.join(os.path.dirname(sys.executable), "batchai")
    return subprocess.run(
        [script, *args], env=service.env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0 and "Traceback" not in result.stderr, (result.args, result.stdout, result.stderr)
    return result.stdout


def wait_idle(service, cluster: str, count: int) -> list[dict]:
    def idle():
        nodes = json.loads(ok(batchai(service, "cluster", "node", "list", "-n", cluster, "-o", "json")))
        assert not [n for n in nodes if n["state"] == "unusable"], nodes
        return nodes if len(nodes) == count and all(n["state"] == "idle" for n in nodes) else None

    return wait_for(idle, f"{cluster} to be idle", timeout=90, interval=0.5)


def wait_loads(service, cluster: str) -> list[dict]:
    """Every node's load, once each has one with CPU (the second heartbeat that reads it)."""

    def loads():
        nodes = json.loads(ok(batchai(service, "cluster", "node", "list", "-n", cluster, "-o", "json")))
        found = [n["load"] for n in nodes]
        return found if all(load and load["cpuPercent"] is not None for load in found) else None

    return wait_for(loads, f"the load of {cluster}'s nodes", timeout=60, interval=0.5)


def test_cluster_create_with_hosts_and_key_then_node_list_and_exec(service, ssh_hosts):
    hosts = ",".join(h.spec for h in ssh_hosts.hosts)
    ok(
        batchai(
            service,
            "cluster",
            "create",
            "gpu",
            "--backend",
            "ssh",
            "--hosts",
            hosts,
            "--key",
            ssh_hosts.client_key,
            "--known-hosts",
            ssh_hosts.known_hosts,
            "--python",
            PYTHON,
            "--node-root",
            "~/batchai-node",
        )
    )
    nodes = wait_idle(service, "gpu", 2)  # one node per host without -t
    assert sorted(n["ipAddress"] for n in nodes) == sorted(h.address for h in ssh_hosts.hosts)
    table = ok(batchai(service, "cluster", "node", "list", "-n", "gpu"))
    assert "SSH Port" in table and all(h.address in table for h in ssh_hosts.hosts), table
    for load in wait_loads(service, "gpu"):  # each host's, read by the heartbeat from its /proc
        assert load["scope"] == "node" and load["machine"] is None, load
        assert 0 <= load["cpuPercent"] <= 100 and 0 < load["memoryUsedBytes"] < load["memoryTotalBytes"], load
        assert (load["gpus"] is None) == (shutil.which("nvidia-smi") is None), load
    table = ok(batchai(service, "cluster", "node", "list", "-n", "gpu"))
    assert "CPU" in table.splitlines()[0] and table.count(" GiB") == 2, table
    node = nodes[0]
    out = ok(batchai(service, "cluster", "node", "exec", node["nodeId"], "--", "hostname", "-I"))  # cluster found
    assert node["ipAddress"] in out.split(), out
    failed = batchai(
        service, "cluster", "node", "exec", "-n", "gpu", node["nodeId"], "--", "echo", "oops", ">&2;", "exit", "3"
    )
    assert failed.returncode == 3 and failed.stderr.strip() == "oops", (failed.returncode, failed.stderr)
    missing = batchai(service, "cluster", "node", "exec", "-n", "gpu", "tvm-999", "--", "true")
    assert missing.returncode == 1 and "tvm-999" in missing.stderr and "Traceback" not in missing.stderr
    # The key's path is shown (it is not a secret); no key material is in the cluster's description.
    shown = ok(batchai(service, "cluster", "show", "-n", "gpu"))
    assert ssh_hosts.client_key in shown and "PRIVATE KEY" not in shown


def test_batchai_cluster_json_with_backend_options(service, ssh_hosts, tmp_path):
    document = {
        "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/cluster.json",
        "properties": {
            "vmSize": "STANDARD_D1",
            "backend": "ssh",
            "scaleSettings": {"manual": {"targetNodeCount": 1}},
            "backendOptions": {
                "hosts": [ssh_hosts.hosts[1].spec],
                "keyFile": ssh_hosts.client_key,
                "knownHosts": ssh_hosts.known_hosts,
                "python": PYTHON,
                "root": "~/batchai-node",
            },
        },
    }
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(document))
    ok(batchai(service, "cluster", "create", "-n", "fromjson", "-f", str(path)))
    nodes = wait_idle(service, "fromjson", 1)
    assert nodes[0]["ipAddress"] == ssh_hosts.hosts[1].address and nodes[0]["port"] == 22


def test_node_exec_on_a_local_cluster_runs_as_that_node(service):
    ok(batchai(service, "cluster", "create", "plain", "-t", "1"))
    wait_idle(service, "plain", 1)
    nodes = json.loads(ok(batchai(service, "cluster", "node", "list", "-n", "plain", "-o", "json")))
    node = nodes[0]["nodeId"]
    out = ok(batchai(service, "cluster", "node", "exec", "-n", "plain", node, "--", "echo $AZ_BATCHAI_NODE_IP"))
    assert out.strip() == nodes[0]["ipAddress"]
