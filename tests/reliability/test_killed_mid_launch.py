"""A kill -9 of the service at any moment loses no job. Here: at the moment it has started a job (its
nodes claimed, no task recorded yet); at the moment it has recorded the job's task and is handing it
to the node (before or after its task.json is written, or its launcher got it); and after it placed a
new node, before its mounts and setup (that state is made in the store: the moment is too short to
hit). The restarted service starts the attempt again, hands over again what no process took up, or
prepares the node on: each job runs once and succeeds."""

from __future__ import annotations

import os
import sqlite3

import pytest

from helpers.gates import append, lines
from helpers.waits import wait_for

ITERATIONS = 4
KILL_AT = {
    "job started": "SELECT COUNT(*) FROM jobs WHERE name = ? AND state = 'running'",
    "task recorded": "SELECT COUNT(*) FROM tasks JOIN jobs ON jobs.id = tasks.job_id WHERE jobs.name = ?",
}


def _seen(store: str, query: str, job: str) -> bool:
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(query, (job,)).fetchone()[0] > 0
    except sqlite3.OperationalError:  # the store is being written: not yet
        return False


@pytest.mark.parametrize("moment", list(KILL_AT))
def test_a_service_killed_as_it_starts_a_job_runs_it_once_after_its_restart(service_process, client, tmp_path, moment):
    store = os.path.join(service_process.home, "batchai.db")
    ran = tmp_path / "ran"
    for index in range(ITERATIONS):
        name = f"j{index}"  # the job's and its own cluster's
        client.create_cluster("default", {"backend": "local", "nodeCount": 1}, name)
        spec = {"cluster": name, "nodeCount": 1, "customToolkitSettings": {"commandLine": append(ran, name)}}
        client.create_job("default", "default", spec, name)
        wait_for(lambda name=name: _seen(store, KILL_AT[moment], name), moment, interval=0.001)
        service_process.kill()
        client = service_process.start()
        job = client.wait_for_job("default", "default", name, timeout=60)
        assert job["executionState"] == "succeeded", job
    assert lines(ran) == [f"j{index}" for index in range(ITERATIONS)]


def test_a_node_placed_when_the_service_died_is_prepared_after_its_restart(service_process, client, tmp_path):
    store = os.path.join(service_process.home, "batchai.db")
    client.create_cluster("default", {"backend": "local", "nodeCount": 1}, "c")
    wait_for(lambda: _seen(store, "SELECT COUNT(*) FROM nodes WHERE cluster = ? AND state = 'idle'", "c"), "idle")
    service_process.kill()
    with sqlite3.connect(store) as db:  # what a kill after the node's placement, before it was ready, leaves
        db.execute("UPDATE nodes SET state = 'preparing' WHERE cluster = 'c'")
    db.close()
    client = service_process.start()
    ran = tmp_path / "ran"
    spec = {"cluster": "c", "nodeCount": 1, "customToolkitSettings": {"commandLine": append(ran, "ran")}}
    client.create_job("default", "default", spec, "j")
    assert client.wait_for_job("default", "default", "j", timeout=60)["executionState"] == "succeeded"
    assert lines(ran) == ["ran"]
