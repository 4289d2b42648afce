"""A kill -9 of the service at any moment loses no task: here at the moment it has recorded a job's task
and is handing it to the node (before or after its task.json is written, or its launcher got it). The
restarted service hands over again what no process took up, and each job runs once and succeeds."""

from __future__ import annotations

import os
import sqlite3

from helpers.gates import append, lines
from helpers.waits import wait_for

ITERATIONS = 6


def _task_recorded(store: str, job: str) -> bool:
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
            query = "SELECT COUNT(*) FROM tasks JOIN jobs ON jobs.id = tasks.job_id WHERE jobs.name = ?"
            return db.execute(query, (job,)).fetchone()[0] > 0
    except sqlite3.OperationalError:  # the store is being written: not yet
        return False


def test_a_service_killed_as_it_starts_a_task_runs_it_once_after_its_restart(service_process, client, tmp_path):
    client.create_cluster("default", {"backend": "local", "nodeCount": 1}, "c")
    store = os.path.join(service_process.home, "batchai.db")
    ran = tmp_path / "ran"
    for index in range(ITERATIONS):
        name = f"j{index}"
        spec = {"cluster": "c", "nodeCount": 1, "customToolkitSettings": {"commandLine": append(ran, name)}}
        client.create_job("default", "default", spec, name)
        wait_for(lambda name=name: _task_recorded(store, name), "the task's record", interval=0.001)
        service_process.kill()
        client = service_process.start()
        job = client.wait_for_job("default", "default", name, timeout=60)
        assert job["executionState"] == "succeeded", job
    assert lines(ran) == [f"j{index}" for index in range(ITERATIONS)]
