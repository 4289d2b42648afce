"""A damaged store: the service refuses to start on it (changing nothing) and says how to recover; a lost
store is reported loudly; a schema upgrade keeps a backup of the store it upgrades."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")


def store_of(home: str) -> str:
    return os.path.join(home, "batchai.db")


def contents(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def truncate_to_nothing(path: str) -> None:
    os.truncate(path, 0)


def truncate_to_half(path: str) -> None:
    os.truncate(path, os.path.getsize(path) // 2)


def overwrite_header(path: str) -> None:
    with open(path, "r+b") as handle:
        handle.write(b"not a database!!")


def corrupt_pages(path: str) -> None:
    with open(path, "r+b") as handle:
        handle.seek(4096)
        handle.write(b"\xff" * 8192)


DAMAGE = {
    "empty": (truncate_to_nothing, "is empty (0 bytes)"),
    "truncated": (truncate_to_half, "StoreDamaged"),
    "bad header": (overwrite_header, "its header is not SQLite's"),
    "garbled pages": (corrupt_pages, "StoreDamaged"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_store_is_refused_and_left_as_it_was(used_home, serve_refused, damage):
    home = used_home.copy()
    path = store_of(home)
    spoil, says = DAMAGE[damage]
    spoil(path)
    before = contents(path)
    output = serve_refused(home)
    assert says in output and path in output, output[-3000:]
    assert "To recover: stop every batchai service on this home" in output and "move" in output
    assert "Traceback" not in output
    assert contents(path) == before


def test_a_store_that_cannot_be_read_is_refused(used_home, serve_refused):
    home = used_home.copy()
    path = store_of(home)
    os.remove(path)
    os.mkdir(path)  # what root cannot read either (chmod 000 does not stop root)
    output = serve_refused(home)
    assert f"the store {path} cannot be read (Is a directory)" in output, output[-3000:]


def test_a_store_whose_write_ahead_log_was_removed_is_refused(service_process, client, serve_refused):
    client.create_cluster("default", {"backend": "local", "nodeCount": 0}, "in-the-log")
    service_process.kill()  # no checkpoint: the cluster is only in the write-ahead log
    path = store_of(service_process.home)
    os.remove(path + "-wal")
    output = serve_refused(service_process.home)
    assert "holds no tables (was its write-ahead log" in output, output[-3000:]


def test_a_deleted_store_starts_empty_but_says_loudly_that_the_home_holds_job_data(used_home, service_process):
    home = used_home.copy()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(store_of(home) + suffix):
            os.remove(store_of(home) + suffix)
    service_process.home = home
    client = service_process.start()
    assert client.jobs("default") == []
    log = service_process.log()
    assert f"WARNING: the store {store_of(home)} holds no jobs or clusters, but {home} holds job data" in log, log
    # The log also holds the first start, on the new home: that one was quiet.
    assert log.count("holds job data") == 1


def test_a_schema_upgrade_backs_up_the_store_first(service_process):
    home = service_process.home
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(DATA, "store-v0.sql")) as dump, sqlite3.connect(store_of(home)) as db:
        db.executescript(dump.read().replace("@BATCHAI_HOME@", home))
    with sqlite3.connect(store_of(home)) as db:
        jobs_before = db.execute("SELECT name FROM jobs ORDER BY id").fetchall()
    client = service_process.start()
    assert client.jobs("default")
    backup = store_of(home) + ".v0.bak"
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    with sqlite3.connect(backup) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
        assert db.execute("SELECT name FROM jobs ORDER BY id").fetchall() == jobs_before
    assert f"backed up the store to {backup} before upgrading its schema from version 0" in service_process.log()
    # A later start has nothing to upgrade and leaves the backup alone.
    service_process.stop()
    made = os.path.getmtime(backup)
    service_process.start()
    assert os.path.getmtime(backup) == made


def test_inside_jupyter_a_damaged_store_answers_503_with_the_reason(launch):
    home = launch.env["BATCHAI_HOME"]
    os.makedirs(home)
    with open(store_of(home), "wb") as handle:
        handle.write(b"garbage, not a store" * 100)
    launch.start(launch.jupyter_argv("--IdentityProvider.token=jt"), token="jt", ready=503)
    error = launch.get("version", "jt").json()
    assert error["error"] == "ServiceUnavailable", error
    assert f"the store {store_of(home)} is not a batchai store" in error["message"]
    assert "To recover" in error["message"]
    assert launch.get("workspaces", "jt").status_code == 503
    assert contents(store_of(home)) == b"garbage, not a store" * 100


@pytest.mark.parametrize("key", ["missing", "another store's"])
def test_a_store_without_its_key_is_refused_and_left_as_it_was(used_home, serve_refused, key):
    """The key that seals the store's secrets (batchai.db.key) lost, or replaced: the service does not start
    (it would make a new key, or fail on the first job with secrets), and says which file to put back."""
    home = used_home.copy()
    key_file = store_of(home) + ".key"
    if key == "missing":
        os.remove(key_file)
    else:
        with open(key_file, "wb") as handle:
            handle.write(b"MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=\n")  # a well-formed key, not this store's
    before = contents(store_of(home))
    output = serve_refused(home)
    assert "StoreKeyMismatch" in output and f"the secrets in {store_of(home)} cannot be read" in output, output[-3000:]
    assert f"put back the batchai.db.key that came with this store at {key_file}" in output, output[-3000:]
    assert contents(store_of(home)) == before
    assert os.path.exists(key_file) == (key != "missing")  # no new key was made over the sealed secrets
