"""The counts a submission reads are kept by the store (schema step 2), not counted at each submission:
each experiment's jobs, and each cluster's queued jobs per priority. Whatever happens to the jobs
(inserted, moved through states, re-prioritised, deleted, a rolled-back transaction), the kept counts
are what counting the rows gives; a store from before the step gets them counted once, when upgraded."""

import os
import random
import sqlite3

import pytest

from batchai_jupyter.core.store import Store

V0_DUMP = os.path.join(os.path.dirname(__file__), "..", "data", "store-v0.sql")
STATES = ("queued", "queued", "running", "succeeded", "failed")


@pytest.fixture
def store(tmp_path):
    store = Store(str(tmp_path / "batchai.db"))
    yield store
    store.close()


def _counted(store: Store) -> tuple[dict, dict]:
    experiments = {
        (row["workspace"], row["name"]): row["n"]
        for row in store.query(
            "SELECT e.workspace, e.name, (SELECT COUNT(*) FROM jobs j WHERE j.workspace = e.workspace"
            " AND j.experiment = e.name) AS n FROM experiments e"
        )
    }
    queued: dict = {}
    for row in store.query("SELECT workspace, cluster, priority FROM jobs WHERE state = 'queued'"):
        key = (row["workspace"], row["cluster"], row["priority"])
        queued[key] = queued.get(key, 0) + 1
    return experiments, queued


def _kept(store: Store) -> tuple[dict, dict]:
    experiments = {
        (row["workspace"], row["name"]): row["job_count"] for row in store.query("SELECT * FROM experiments")
    }
    queued = {
        (row["workspace"], row["cluster"], row["priority"]): row["queued"]
        for row in store.query("SELECT * FROM queued_counts WHERE queued != 0")
    }
    return experiments, queued


def _insert_job(store: Store, rng: random.Random, index: int) -> None:
    store.insert(
        "jobs",
        workspace=rng.choice(["w1", "w2"]),
        experiment=rng.choice(["e", "f"]),
        name=f"j{index}",
        uuid="u",
        cluster=rng.choice(["a", "b"]),
        priority=rng.choice([-100, 0, 100, 7]),
        state=rng.choice(STATES),
        spec="{}",
        created=0,
        state_since=0,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kept_counts_follow_every_change_of_the_jobs(store, seed):
    rng = random.Random(seed)
    for workspace in ("w1", "w2"):
        store.insert("workspaces", name=workspace, created=0)
        for experiment in ("e", "f"):
            store.insert("experiments", workspace=workspace, name=experiment, created=0)
    for index in range(200):
        ids = [row["id"] for row in store.query("SELECT id FROM jobs")]
        action = rng.random()
        if action < 0.45 or not ids:
            _insert_job(store, rng, index)
        elif action < 0.7:
            store.update("jobs", {"id": rng.choice(ids)}, state=rng.choice(STATES))
        elif action < 0.8:
            store.update("jobs", {"id": rng.choice(ids)}, priority=rng.choice([-100, 0, 100, 7]))
        elif action < 0.85:
            store.update("jobs", {"id": rng.choice(ids)}, cluster=rng.choice(["a", "b"]))
        elif action < 0.95:
            store.delete("jobs", id=rng.choice(ids))
        else:  # a transaction that fails part-way changes no count either
            with pytest.raises(RuntimeError), store.transaction():
                _insert_job(store, rng, 10_000 + index)
                store.delete("jobs", id=rng.choice(ids))
                raise RuntimeError("rolled back")
        assert _kept(store) == _counted(store)
    experiments, queued = _counted(store)
    assert sum(experiments.values()) > 0 and sum(queued.values()) > 0
    for (workspace, cluster, priority), _ in queued.items():
        assert store.queued_at_or_above(workspace, cluster, priority) == sum(
            n for (w, c, p), n in queued.items() if (w, c) == (workspace, cluster) and p >= priority
        )


def test_a_store_from_before_the_counts_gets_them_counted_when_upgraded(tmp_path):
    path = str(tmp_path / "batchai.db")
    with open(V0_DUMP) as dump, sqlite3.connect(path) as connection:
        connection.executescript(dump.read().replace("@BATCHAI_HOME@", str(tmp_path)))
    store = Store(path)
    try:
        kept, counted = _kept(store), _counted(store)
        assert kept == counted
        assert sum(kept[0].values()) > 0 and sum(kept[1].values()) > 0  # the dump has jobs, some queued
    finally:
        store.close()
