"""Nodes show their load: the local backend's nodes report their tasks' processes beside the machine's
totals, in the REST node views (cluster nodes, job nodes, the job snapshot), the CLI's node table and
the ClusterMonitor / JobMonitor widgets."""

from __future__ import annotations

import shutil
import sys

import pytest

from batchai_jupyter.client import Client
from batchai_jupyter.notebook.workspace import Workspace
from helpers.api import make_cluster
from helpers.cli import cli, ok
from helpers.service import TOKEN
from helpers.waits import wait_for

BURN = f"{sys.executable} -c 'while True: pass'"


def _nodes(client: Client, cluster: str) -> dict[str, dict]:
    return {node["nodeId"]: node for node in client.cluster_nodes("default", cluster)}


@pytest.fixture(scope="module")
def burning(shared_service):
    """(client, cluster, the node burning a core, the idle node)."""
    client = Client(shared_service.url, TOKEN)
    cluster = "loadnodes"
    make_cluster(client, cluster, nodes=2)
    spec = {"cluster": cluster, "nodeCount": 1, "customToolkitSettings": {"commandLine": BURN}}
    client.create_job("default", "default", spec, "burn")
    wait_for(lambda: client.job("default", "default", "burn")["executionState"] == "running", "the burning job to run")
    (busy,) = [n["nodeId"] for n in client.job_nodes("default", "default", "burn")]
    (idle,) = [name for name in _nodes(client, cluster) if name != busy]
    yield client, cluster, busy, idle
    client.terminate_job("default", "default", "burn")


def test_the_node_that_burns_cpu_shows_more_cpu_than_the_idle_one(burning):
    client, cluster, busy, idle = burning

    def measured():
        nodes = _nodes(client, cluster)
        loads = nodes[busy]["load"], nodes[idle]["load"]
        # not there yet: the first samples have no earlier one to measure CPU against
        if any(load is None or load["cpuPercent"] is None for load in loads):
            return None
        # a busy loop uses a whole core of this machine's; generous, as the machine is shared
        return loads if loads[0]["cpuPercent"] >= 10 else None

    busy_load, idle_load = wait_for(measured, "the burning node's CPU to show", timeout=90)
    assert busy_load["cpuPercent"] > idle_load["cpuPercent"] + 5, (busy_load, idle_load)
    assert idle_load["cpuPercent"] == 0 and idle_load["memoryUsedBytes"] == 0  # no task: nothing of its own
    for load in (busy_load, idle_load):
        assert load["scope"] == "tasks" and load["sampled"]
        machine = load["machine"]
        assert 0 < machine["memoryUsedBytes"] < machine["memoryTotalBytes"] == load["memoryTotalBytes"]
        assert machine["cpuPercent"] is None or 0 <= machine["cpuPercent"] <= 100
        # GPUs where nvidia-smi reads some; null (never an error) where it cannot
        assert (load["gpus"] is None) == (shutil.which("nvidia-smi") is None), load["gpus"]
    # the wrapper and the burning python: megabytes, far below the machine's memory
    assert 1 << 20 < busy_load["memoryUsedBytes"] < busy_load["memoryTotalBytes"] // 2


def test_job_nodes_and_the_job_snapshot_carry_the_load(burning):
    client, _cluster, busy, _idle = burning
    (node,) = client.job_nodes("default", "default", "burn")
    assert node["nodeId"] == busy and node["load"]["scope"] == "tasks"
    snapshot = client.job_snapshot("default", "default", "burn")
    assert [n["nodeId"] for n in snapshot["nodes"]] == [busy] and snapshot["nodes"][0]["load"] is not None


def test_cluster_node_list_shows_load_columns(shared_service, burning):
    _client, cluster, busy, idle = burning
    lines = ok(cli(shared_service, "cluster", "node", "list", "-n", cluster)).splitlines()
    assert lines[0].split()[-3:] == ["CPU", "Memory", "GPU"], lines[0]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert "(machine" in rows[busy] and "MiB (machine" in rows[busy] and "GiB)" in rows[busy], rows
    assert rows[idle].split()[3] in ("0%", "-"), rows  # the idle node's tasks use nothing


def test_the_monitors_show_each_nodes_load(burning):
    client, cluster, busy, idle = burning
    workspace = Workspace(client=client)
    cluster_monitor = workspace.clusters.monitor(cluster)
    job_monitor = workspace.jobs.get("default", "burn").monitor()
    try:
        # the burning node's row, with its tasks' CPU beside the machine's, once a sample measured it
        wait_for(lambda: _row_of(cluster_monitor.nodes_view.value, busy).count("% (machine") == 1, "cluster load")
        assert "cpu use" in cluster_monitor.nodes_view.value and "MiB (machine" in cluster_monitor.nodes_view.value
        wait_for(lambda: "MiB (machine" in _row_of(job_monitor.task_table.value, busy), "the job's node load")
        assert "node cpu" in job_monitor.task_table.value and idle not in job_monitor.task_table.value
    finally:
        cluster_monitor.close()
        job_monitor.close()


def _row_of(table: str, node: str) -> str:
    return next((row for row in table.split("<tr") if f">{node}<" in row), "")
