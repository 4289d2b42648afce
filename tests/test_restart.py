"""The service survives kill -9: running jobs are re-attached (never started twice), queued jobs
run once, clusters/nodes/jobs are kept, and a second service on the same home is refused."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers.api import make_cluster, read_log, submit, wait_job
from helpers.gates import append, lines, open_gate, wait_gate
from helpers.tools import free_port
from helpers.waits import wait_for


def job(client, name: str) -> dict:
    return client.job("default", "default", name)


def cluster(client, name: str) -> dict:
    return client.get(client.cluster_path("default", name))


def nodes(client, name: str) -> list[dict]:
    return client.list(client.cluster_path("default", name) + "/nodes")


def wait_state(client, name: str, state: str, timeout: float = 30.0) -> dict:
    return wait_for(
        lambda: (lambda j: j if j["executionState"] == state else None)(job(client, name)),
        f"job {name} to be {state}",
        timeout,
    )


def exit_files(home: str, cluster_name: str, job_uuid: str) -> list[str]:
    """The `exit` files the job wrappers of a job wrote on the cluster's local nodes."""
    root = os.path.join(home, "nodes", "default", cluster_name)
    found = []
    for directory, _subdirs, files in os.walk(root):
        if os.path.basename(directory).startswith(job_uuid) and "exit" in files:
            found.append(os.path.join(directory, "exit"))
    return found


def test_kill_9_reattaches_running_jobs_and_runs_queued_jobs_once(client, service_process, unique, tmp_path):
    c_wide, c_one = unique("wide"), unique("one")
    make_cluster(client, c_wide, nodes=2)
    make_cluster(client, c_one, nodes=1)
    gate, gate_early = tmp_path / "gate", tmp_path / "gate-early"
    runs, queued_runs, early_runs = tmp_path / "runs", tmp_path / "queued-runs", tmp_path / "early-runs"
    wide, early = unique("wide"), unique("early")
    queued = [unique("q"), unique("q")]
    # A 2-node job that is still running across the restart, then writes output and exits 3.
    submit(
        client,
        wide,
        c_wide,
        {
            "nodeCount": 2,
            "customToolkitSettings": {
                "commandLine": f"{append(runs, 'run')}; {wait_gate(gate)}; sleep 0.5; echo wide-output; exit 3"
            },
        },
    )
    for name in queued:
        submit(
            client,
            name,
            c_wide,
            {"customToolkitSettings": {"commandLine": f"{append(queued_runs, name)}; echo {name}-output"}},
        )
    # A job that ends while the service is down.
    submit(
        client,
        early,
        c_one,
        {
            "customToolkitSettings": {
                "commandLine": f"{append(early_runs, 'run')}; {wait_gate(gate_early)}; echo early-output"
            }
        },
    )
    before = wait_state(client, wide, "running")
    early_uuid = wait_state(client, early, "running")["uuid"]
    wait_for(lambda: lines(runs) == ["run"] and lines(early_runs) == ["run"], "both jobs' commands to start")
    assert [job(client, name)["executionState"] for name in queued] == ["queued", "queued"]

    service_process.kill()
    open_gate(gate_early)
    wait_for(
        lambda: exit_files(service_process.home, c_one, early_uuid),
        "the early job to end while the service is down",
        timeout=30,
    )

    client = service_process.start()
    # The finished job's end is recorded from what its wrapper left on disk.
    done_early = wait_job(client, early, timeout=30)
    assert done_early["executionState"] == "succeeded" and done_early["executionInfo"]["exitCode"] == 0
    assert read_log(client, early, "stdout.txt") == "early-output\n"
    assert lines(early_runs) == ["run"]

    # The running job is re-attached: same attempt and start, its command not run again.
    after = job(client, wide)
    assert after["executionState"] == "running"
    assert after["attempt"] == 1
    assert after["executionInfo"]["startTime"] == before["executionInfo"]["startTime"]
    assert cluster(client, c_wide)["nodeStateCounts"]["runningNodeCount"] == 2
    assert [job(client, name)["executionState"] for name in queued] == ["queued", "queued"]

    open_gate(gate)
    done = wait_job(client, wide, timeout=60)
    assert done["executionState"] == "failed"
    assert done["executionInfo"]["exitCode"] == 3
    assert done["attempt"] == 1
    assert read_log(client, wide, "stdout.txt") == "wide-output\n"
    assert lines(runs) == ["run"], "the re-attached job's command ran more than once"

    for name in queued:
        finished = wait_job(client, name, timeout=60)
        assert finished["executionState"] == "succeeded" and finished["attempt"] == 1
        assert read_log(client, name, "stdout.txt") == f"{name}-output\n"
    assert sorted(lines(queued_runs)) == sorted(queued)
    assert len(lines(queued_runs)) == 2
    counts = cluster(client, c_wide)["nodeStateCounts"]
    assert counts["idleNodeCount"] == 2 and counts["runningNodeCount"] == 0


def test_kill_9_while_idle_keeps_clusters_nodes_and_jobs(client, service_process, unique, tmp_path):
    c = unique("keep")
    setups = tmp_path / "setups"
    make_cluster(client, c, nodes=2, setupTask=append(setups, "$AZ_BATCHAI_NODE_NAME"))
    ok, bad = unique("ok"), unique("bad")
    submit(client, ok, c, {"customToolkitSettings": {"commandLine": "echo fine"}})
    submit(client, bad, c, {"nodeCount": 2, "customToolkitSettings": {"commandLine": "exit 5"}})
    assert wait_job(client, ok)["executionState"] == "succeeded"
    assert wait_job(client, bad)["executionState"] == "failed"
    wait_for(lambda: cluster(client, c)["nodeStateCounts"]["idleNodeCount"] == 2, "both nodes idle")
    nodes_before = sorted((n["nodeId"], n["ipAddress"], n["state"]) for n in nodes(client, c))
    jobs_before = {name: job(client, name) for name in (ok, bad)}
    assert len(lines(setups)) == 2

    service_process.kill()
    client = service_process.start()

    view = cluster(client, c)
    assert view["currentNodeCount"] == 2 and view["allocationState"] == "steady"
    assert sorted((n["nodeId"], n["ipAddress"], n["state"]) for n in nodes(client, c)) == nodes_before
    for name, before in jobs_before.items():
        after = job(client, name)
        for key in ("executionState", "attempt", "uuid", "executionInfo"):
            assert after[key] == before[key], (name, key)
    assert jobs_before[bad]["executionInfo"]["exitCode"] == 5
    assert read_log(client, ok, "stdout.txt") == "fine\n"
    # The nodes were kept, not provisioned again: their setup task did not run again.
    assert len(lines(setups)) == 2
    again = unique("again")
    submit(client, again, c, {"nodeCount": 2, "customToolkitSettings": {"commandLine": "echo again"}})
    assert wait_job(client, again)["executionState"] == "succeeded"
    assert len(lines(setups)) == 2


def test_second_service_on_the_same_home_is_refused(client, service_process):
    second = subprocess.run(
        [sys.executable, "-m", "batchai_jupyter.cli", "serve", "--port", str(free_port())],
        env={**service_process.env(), "JUPYTER_RUNTIME_DIR": service_process.runtime_dir + "-second"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
    )
    output = second.stdout + second.stderr
    assert second.returncode != 0, output[-3000:]
    assert "HomeInUse" in output, output[-3000:]
    assert f"another batchai service already manages {service_process.home}" in output, output[-3000:]
    # The first service is unaffected.
    assert client.version()["home"] == service_process.home
    assert client.clusters("default") == []
