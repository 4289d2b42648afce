"""When a job ends (a task fails, the user terminates it), nothing it started stays on its nodes:
not the running rank's process group, not what an exited rank left in the background, not what
escaped into a session of its own. Checked on the local backend through a real `batchai serve`,
by scanning /proc for the processes the job's script started under names only it uses."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import uuid

import pytest

from helpers.waits import wait_for


def idle_nodes(client, cluster: str) -> int:
    return client.get(client.cluster_path("default", cluster))["nodeStateCounts"]["idleNodeCount"]


@pytest.fixture
def cluster(shared_client):
    name = "procs-" + uuid.uuid4().hex[:6]
    shared_client.create_cluster("default", {"backend": "local", "nodeCount": 2}, name)
    wait_for(lambda: idle_nodes(shared_client, name) == 2, f"cluster {name} to have 2 idle nodes")
    return name


def start_job(client, cluster: str, tmp_path, probe) -> tuple[str, str]:
    """A 2-rank job whose ranks both run with their background processes; rank 1 fails once the
    test creates tmp_path/go."""
    script = tmp_path / "ranks.py"
    script.write_text(probe.SCRIPT)
    token = probe.token()
    name = "job-" + token[-10:]
    client.create_job(
        "default",
        "default",
        {
            "cluster": cluster,
            "nodeCount": 2,
            "pyTorchSettings": {"pythonScriptFilePath": str(script), "commandLineArgs": f"{token} {tmp_path / 'go'}"},
        },
        name,
    )
    wait_for(lambda: probe.processes(token) == probe.expected(token), "every rank's background processes")
    return name, token


def test_a_failed_rank_ends_the_job_and_every_process_it_started(shared_client, cluster, tmp_path, leftover_probe):
    name, token = start_job(shared_client, cluster, tmp_path, leftover_probe)
    (tmp_path / "go").touch()  # rank 1 exits 3, leaving its two sleeps behind
    done = shared_client.wait_for_job("default", "default", name, timeout=120)
    assert done["executionState"] == "failed"
    errors = done["executionInfo"]["errors"]
    assert [e["code"] for e in errors] == ["JobFailed"] and "exited with code 3" in errors[0]["message"], errors
    wait_for(lambda: leftover_probe.processes(token) == [], "the failed job's processes to be gone")
    assert idle_nodes(shared_client, cluster) == 2


def test_terminating_a_job_kills_every_process_it_started(shared_client, cluster, tmp_path, leftover_probe):
    name, token = start_job(shared_client, cluster, tmp_path, leftover_probe)
    shared_client.request("POST", f"workspaces/default/experiments/default/jobs/{name}/terminate")
    done = shared_client.wait_for_job("default", "default", name, timeout=120)
    assert done["executionState"] == "failed"
    assert [e["code"] for e in done["executionInfo"]["errors"]] == ["JobTerminated"]
    wait_for(lambda: leftover_probe.processes(token) == [], "the terminated job's processes to be gone")
    assert idle_nodes(shared_client, cluster) == 2


def test_a_restart_between_killing_the_tasks_and_ending_the_job_runs_the_attempt_again(
    client, service_process, tmp_path
):
    """The service recorded the attempt's tasks killed, then died before it wrote the job's end
    (here: killed -9, and the store brought to that point by hand). Restarted, it must not take the
    killed tasks for a success: the attempt runs again, not counted as a retry."""
    name = "interrupted-" + uuid.uuid4().hex[:6]
    client.create_cluster("default", {"backend": "local", "nodeCount": 1}, "one")
    wait_for(lambda: idle_nodes(client, "one") == 1, "the cluster's node")
    runs = tmp_path / "runs"
    client.create_job(
        "default",
        "default",
        {
            "cluster": "one",
            "customToolkitSettings": {
                "commandLine": (f"echo run >> {runs}; [ $(wc -l < {runs}) -ge 2 ] && exit 0; exec sleep 600")
            },
        },
        name,
    )
    wait_for(lambda: runs.exists() and runs.read_text() == "run\n", "the first attempt to start")
    service_process.kill()
    database = os.path.join(service_process.home, "batchai.db")
    with sqlite3.connect(database) as db:
        [(job_id, state)] = db.execute("SELECT id, state FROM jobs WHERE name = ?", (name,)).fetchall()
        assert state == "running"
        [(run_dir,)] = db.execute("SELECT run_dir FROM tasks WHERE job_id = ?", (job_id,)).fetchall()
        db.execute("UPDATE tasks SET state = 'killed', ended = ? WHERE job_id = ?", (time.time(), job_id))
    with open(os.path.join(run_dir, "pid")) as handle:  # the kill itself had happened too
        os.killpg(int(handle.read()), signal.SIGKILL)

    client = service_process.start()
    done = client.wait_for_job("default", "default", name, timeout=120)
    assert done["executionState"] == "succeeded", done["executionInfo"]
    assert runs.read_text() == "run\nrun\n"
    assert [e["code"] for e in done["executionInfo"]["errors"]] == ["AttemptInterrupted"]
    assert (done["attempt"], done["retriesUsed"]) == (2, 0)
