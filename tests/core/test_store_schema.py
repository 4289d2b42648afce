"""The store's schema version: a new store is at the newest; one written before versions existed
(tests/data/store-v0.sql, made by that release) is upgraded in place with its rows intact; one
written by a newer release is refused with a clear error."""

import os
import sqlite3

import pytest

from batchai_jupyter.core.store import MIGRATIONS, SCHEMA_VERSION, Store
from batchai_jupyter.errors import BatchAIError

V0_DUMP = os.path.join(os.path.dirname(__file__), "..", "data", "store-v0.sql")
LISTING_INDEXES = {
    "jobs_by_workspace",
    "jobs_by_workspace_state",
    "jobs_by_experiment",
    "jobs_by_experiment_state",
    "jobs_queue",
}


def _indexes(path: str) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def _v0_database(path: str) -> None:
    with open(V0_DUMP) as dump, sqlite3.connect(path) as connection:
        connection.executescript(dump.read().replace("@BATCHAI_HOME@", os.path.dirname(path)))
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 0


def test_a_new_store_has_the_newest_schema(tmp_path):
    store = Store(str(tmp_path / "batchai.db"))
    assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    store.close()
    assert LISTING_INDEXES <= _indexes(str(tmp_path / "batchai.db"))


def test_a_store_written_before_schema_versions_is_upgraded_in_place(tmp_path):
    path = str(tmp_path / "batchai.db")
    _v0_database(path)
    with sqlite3.connect(path) as connection:
        tables = ("workspaces", "experiments", "datastores", "clusters", "nodes", "jobs", "tasks")
        columns = {  # all but secrets, which later versions seal (tests/core/test_sealed_secrets.py)
            table: [row[1] for row in connection.execute(f"PRAGMA table_info({table})") if row[1] != "secrets"]
            for table in tables
        }
        before = {
            table: connection.execute(f"SELECT {', '.join(columns[table])} FROM {table} ORDER BY rowid").fetchall()
            for table in tables
        }
    assert not LISTING_INDEXES & _indexes(path)

    store = Store(path)
    assert store.schema_version() == SCHEMA_VERSION
    assert [j.name for j in store.job_page("default", None, "queued", 0, None)[0]] == [
        "waiting-secret",
        "waiting-low",
        "waiting-high",
    ]
    assert store.job_by_name("default", "default", "waiting-secret").secrets == {"API_KEY": "s3cr3t-v0"}
    store.close()
    assert LISTING_INDEXES <= _indexes(path)
    with sqlite3.connect(path) as connection:  # the rows as they were, in the columns they had
        assert {
            table: connection.execute(f"SELECT {', '.join(columns[table])} FROM {table} ORDER BY rowid").fetchall()
            for table in before
        } == before
        # What later versions add: each old job keeps the folder its files are in, each workspace is in the
        # default resource group.
        assert connection.execute("SELECT segment FROM jobs ORDER BY rowid").fetchall() == [
            (f"{row[2]}/{row[3]}/{row[4]}",) for row in before["jobs"]
        ]
        assert {row[0] for row in connection.execute("SELECT resource_group FROM workspaces")} == {"default"}
        assert {row[0] for row in connection.execute("SELECT tracking FROM experiments")} == {"{}"}
        assert {row[0] for row in connection.execute("SELECT placements FROM jobs")} == {"{}"}
    again = Store(path)  # opening it again changes nothing
    assert again.schema_version() == SCHEMA_VERSION
    again.close()


def test_a_store_from_a_newer_release_is_refused(tmp_path):
    path = str(tmp_path / "batchai.db")
    Store(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(BatchAIError) as refused:
        Store(path)
    assert refused.value.code == "StoreTooNew"
    assert f"schema version {SCHEMA_VERSION + 1}" in str(refused.value) and "upgrade batchai" in str(refused.value)
