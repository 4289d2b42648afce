"""A home whose store was written by the release before schema versions (tests/data/store-v0.sql,
made by that release) works after an upgrade: `batchai serve` opens it, lists its jobs exactly as
that release did, and runs its queued jobs, secrets included, once the cluster gets a node."""

from __future__ import annotations

import json
import os
import sqlite3

DATA = os.path.join(os.path.dirname(__file__), "data")


def _v0_home(home: str) -> None:
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(DATA, "store-v0.sql")) as dump, sqlite3.connect(os.path.join(home, "batchai.db")) as db:
        db.executescript(dump.read().replace("@BATCHAI_HOME@", home))


def _as_listed_then(jobs: list[dict]) -> list[dict]:
    """The jobs without what later releases added to a job's view: `properties.params` (spec version 2),
    which every job from before then has empty."""
    for job in jobs:
        assert job["properties"].pop("params") == {}
    return jobs


def test_a_store_from_before_schema_versions_lists_and_runs_its_jobs(service_process):
    _v0_home(service_process.home)
    client = service_process.start()

    with open(os.path.join(DATA, "store-v0-listing.json")) as handle:
        listed_then = json.load(handle)
    assert _as_listed_then(client.list("workspaces/default/jobs")) == listed_then["all"]
    assert _as_listed_then(client.list("workspaces/default/experiments/exp/jobs")) == listed_then["exp"]
    assert _as_listed_then(client.list("workspaces/default/jobs", state="queued")) == listed_then["queued"]
    assert [(j["name"], j["queuePosition"]) for j in listed_then["queued"]] == [
        ("waiting-secret", 2),
        ("waiting-low", 3),
        ("waiting-high", 1),
    ]

    client.scale_cluster("default", "later", {"manual": {"targetNodeCount": 1}})
    outputs = {
        ("default", "waiting-high"): "high-output\n",
        ("default", "waiting-secret"): "hello secret-ok\n",
        ("exp", "waiting-low"): "low-output\n",
    }
    for (experiment, name), output in outputs.items():
        job = client.wait_for_job("default", experiment, name, timeout=120)
        assert (job["executionState"], job["executionInfo"]["exitCode"]) == ("succeeded", 0), job
        assert client.read_job_file("default", experiment, name, "stdout.txt").decode() == output
    started = sorted(outputs, key=lambda key: client.job("default", key[0], key[1])["executionInfo"]["startTime"])
    assert [name for _, name in started] == ["waiting-high", "waiting-secret", "waiting-low"]  # the queue's order
    assert client.job("default", "default", "done")["executionState"] == "succeeded"
