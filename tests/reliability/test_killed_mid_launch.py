"""A kill -9 of the service at any moment loses no job: here at the moment it has started a job (its
nodes claimed, no task recorded yet) and at the moment it has recorded the job's task and is handing
it to the node (before or after its task.json is written, or its launcher got it). The restarted
service starts the attempt again, or hands over again what no process took up: each job runs once
and succeeds."""

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
    client.create_cluster("default", {"backend": "local", "nodeCount": 1}, "c")
    store = os.path.join(service_process.home, "batchai.db")
    ran = tmp_path / "ran"
    for index in range(ITERATIONS):
        name = f"j{index}"
        spec = {"cluster": "c", "nodeCount": 1, "customToolkitSettings": {"commandLine": append(ran, name)}}
        client.create_job("default", "default", spec, name)
        wait_for(lambda name=name: _seen(store, KILL_AT[moment], name), moment, interval=0.001)
        service_process.kill()
        client = service_process.start()
        job = client.wait_for_job("default", "default", name, timeout=60)
        assert job["executionState"] == "succeeded", job
    assert lines(ran) == [f"j{index}" for index in range(ITERATIONS)]
