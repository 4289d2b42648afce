"""Opening the store safely: a store file that exists but is not what the service wrote is refused, never
replaced by an empty one; the store is copied aside before a schema migration; and a store that starts empty
over a home full of job files says so loudly (the store may have been deleted)."""

from __future__ import annotations

import glob
import logging
import os
import sqlite3
from collections.abc import Iterator

from ..errors import BatchAIError, storage_error

log = logging.getLogger("batchai")
SQLITE_HEADER = b"SQLite format 3\x00"


class StoreDamaged(BatchAIError):
    status = 503

    def __init__(self, path: str, problem: str):
        super().__init__(
            "StoreDamaged",
            f"the store {path} {problem}; the service did not start, so nothing in "
            f"it was changed. {recovery_hint(path)}",
        )


def backups(path: str) -> list[str]:
    return sorted(glob.glob(glob.escape(path) + ".v*.bak"), key=os.path.getmtime)


def recovery_hint(path: str) -> str:
    found = backups(path)
    restore = f"copy the backup {found[-1]} over it" if found else "restore it from your own backup"
    return (
        f"To recover: stop every batchai service on this home, then {restore}; or move {path} and "
        f"{path}-wal aside to start with an empty store (its jobs, clusters and datastores are then "
        "forgotten; their files stay in the home)"
    )


def check_writable(directory: str) -> None:
    """A home on a read-only file system is refused as that, not as a store SQLite cannot open."""
    if os.statvfs(directory).f_flag & os.ST_RDONLY:
        raise storage_error(True, directory)


def check_store_file(path: str) -> None:
    """Before SQLite opens an existing store (it would silently treat an empty file as a new database)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as failure:
        raise StoreDamaged(path, f"cannot be read ({failure.strerror})") from None
    if not header:
        raise StoreDamaged(path, "is empty (0 bytes)")
    if header != SQLITE_HEADER:
        raise StoreDamaged(path, "is not a batchai store: its header is not SQLite's")


def check_opened(connection: sqlite3.Connection, path: str) -> None:
    """An existing store, just opened: readable throughout, and holding the tables it was created with."""
    try:
        problems = [row[0] for row in connection.execute("PRAGMA quick_check(3)")]
        tables = connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    except sqlite3.DatabaseError as failure:
        raise StoreDamaged(path, f"cannot be read ({failure})") from None
    if problems != ["ok"]:
        raise StoreDamaged(path, "is damaged (" + "; ".join(problems) + ")")
    if not tables:
        raise StoreDamaged(path, f"holds no tables (was its write-ahead log {path}-wal removed?)")


def back_up(connection: sqlite3.Connection, path: str, version: int) -> str:
    """A consistent copy of the store at schema `version`, readable only by its owner, next to it."""
    target = f"{path}.v{version}.bak"
    os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
    os.chmod(target, 0o600)
    copy = sqlite3.connect(target)
    try:
        connection.backup(copy)
    finally:
        copy.close()
    log.warning("batchai: backed up the store to %s before upgrading its schema from version %d", target, version)
    return target


def warn_if_home_orphaned(holds_nothing: bool, path: str, home: str, job_data_roots: list[str]) -> None:
    """A store with no jobs or clusters over a home that holds job files: say it loudly."""
    if not holds_nothing:
        return
    found = next((file for root in job_data_roots for file in _files(root)), None)
    if found is None:
        return
    log.warning(
        "batchai: WARNING: the store %s holds no jobs or clusters, but %s holds job data (e.g. %s). If the "
        "store was deleted or replaced, stop this service now and restore it (%s); the forgotten jobs' "
        "files are not removed",
        path,
        home,
        found,
        ", ".join(backups(path)) or "no backups found next to it",
    )


def _files(root: str) -> Iterator[str]:
    for directory, _, files in os.walk(root):
        for name in files:
            yield os.path.join(directory, name)
