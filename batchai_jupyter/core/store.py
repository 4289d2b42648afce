"""SQLite (WAL) persistence of workspaces, experiments, datastores, clusters, nodes, jobs and tasks.

Every multi-row change goes through `transaction()`, so a crash at any point leaves either the
old or the new state. Datastores, clusters, nodes, jobs and tasks come back as typed records (records.py),
specs decoded once; workspaces and experiments (and `query`) as dicts, their JSON columns decoded.

The schema has a version (PRAGMA user_version): SCHEMA is version 0, as the first releases wrote it,
and each step of MIGRATIONS upgrades it by one, in place, when the store is opened.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..errors import BatchAIError, storage_failure
from . import lifecycle
from .records import Cluster, DatastoreRow, Job, JobBrief, Node, Task
from .sealing import SecretBox, seal_file, store_sealed
from .store_health import StoreDamaged, back_up, check_opened, check_store_file, check_writable

SCHEMA = """
CREATE TABLE IF NOT EXISTS workspaces (
    name TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
    workspace TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (workspace, name));
CREATE TABLE IF NOT EXISTS datastores (
    workspace TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, config TEXT NOT NULL,
    secrets TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL,
    PRIMARY KEY (workspace, name));
CREATE TABLE IF NOT EXISTS clusters (
    workspace TEXT NOT NULL, name TEXT NOT NULL, uuid TEXT NOT NULL, spec TEXT NOT NULL,
    secrets TEXT NOT NULL DEFAULT '{}', target INTEGER NOT NULL, created REAL NOT NULL,
    deleting INTEGER NOT NULL DEFAULT 0, errors TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (workspace, name));
CREATE TABLE IF NOT EXISTS nodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, workspace TEXT NOT NULL, cluster TEXT NOT NULL,
    name TEXT NOT NULL, state TEXT NOT NULL, ip TEXT NOT NULL, job_id INTEGER,
    state_since REAL NOT NULL, errors TEXT NOT NULL DEFAULT '[]', info TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS nodes_by_cluster ON nodes (workspace, cluster);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, workspace TEXT NOT NULL, experiment TEXT NOT NULL,
    name TEXT NOT NULL, uuid TEXT NOT NULL, cluster TEXT NOT NULL, priority INTEGER NOT NULL,
    state TEXT NOT NULL, phase TEXT NOT NULL DEFAULT '', spec TEXT NOT NULL,
    secrets TEXT NOT NULL DEFAULT '{}', attempt INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL, state_since REAL NOT NULL, started REAL, ended REAL,
    exit_code INTEGER, errors TEXT NOT NULL DEFAULT '[]', node_ids TEXT NOT NULL DEFAULT '[]',
    master_port INTEGER, retries_used INTEGER NOT NULL DEFAULT 0,
    UNIQUE (workspace, experiment, name));
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL, attempt INTEGER NOT NULL,
    phase TEXT NOT NULL, name TEXT NOT NULL, node_id INTEGER NOT NULL, role TEXT NOT NULL,
    rank INTEGER NOT NULL, required INTEGER NOT NULL, run_dir TEXT NOT NULL,
    stdout TEXT NOT NULL, stderr TEXT NOT NULL, state TEXT NOT NULL, exit_code INTEGER,
    launched REAL NOT NULL, ended REAL);
CREATE INDEX IF NOT EXISTS tasks_by_job ON tasks (job_id, attempt);
"""

# queued_counts' trigger steps: the job row leaving (OLD) / entering (NEW) the count of its queue and priority.
_COUNT_OUT_OLD = (
    "UPDATE queued_counts SET queued = queued - 1 WHERE OLD.state = 'queued'"
    " AND workspace = OLD.workspace AND cluster = OLD.cluster AND priority = OLD.priority;"
)
_COUNT_IN_NEW = (
    "INSERT INTO queued_counts SELECT NEW.workspace, NEW.cluster, NEW.priority, 1 WHERE NEW.state = 'queued'"
    " ON CONFLICT (workspace, cluster, priority) DO UPDATE SET queued = queued + 1;"
)

# Step n (1-based) takes a database from version n-1 to n, in one transaction. The schema changes only
# by appending a step (SCHEMA stays what version 0 was), so every older store can be brought up to date.
# A step is SQL, or a function of the Store for what SQL cannot do.
MIGRATIONS: tuple[tuple[str | Callable[[Store], None], ...], ...] = (
    # 1: job listings page in SQL. Every index ends with the rowid (= id), so each filter reads its
    # page in id order; the queue index counts the jobs ahead of a queued job without reading rows.
    (
        "CREATE INDEX IF NOT EXISTS jobs_by_workspace ON jobs (workspace)",
        "CREATE INDEX IF NOT EXISTS jobs_by_workspace_state ON jobs (workspace, state)",
        "CREATE INDEX IF NOT EXISTS jobs_by_experiment ON jobs (workspace, experiment)",
        "CREATE INDEX IF NOT EXISTS jobs_by_experiment_state ON jobs (workspace, experiment, state)",
        "CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (state, workspace, cluster, priority)",
    ),
    # 2: the ARM face (server/arm): a workspace's resource group, location and tags; a job's folder in the
    # datastores (Batch AI's jobOutputDirectoryPathSegment), fixed at submit. Jobs from before keep theirs.
    (
        "ALTER TABLE workspaces ADD COLUMN resource_group TEXT NOT NULL DEFAULT 'default'",
        "ALTER TABLE workspaces ADD COLUMN location TEXT NOT NULL DEFAULT 'local'",
        "ALTER TABLE workspaces ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE jobs ADD COLUMN segment TEXT NOT NULL DEFAULT ''",
        "UPDATE jobs SET segment = experiment || '/' || name || '/' || uuid",
    ),
    # 3: an experiment's own tracking settings ({"mlflowTrackingUri": ...}).
    ("ALTER TABLE experiments ADD COLUMN tracking TEXT NOT NULL DEFAULT '{}'",),
    # 4: sweeps (core/sweeps.py) and their trials, each trial one job of the sweep's experiment.
    (
        "CREATE TABLE IF NOT EXISTS sweeps (id INTEGER PRIMARY KEY AUTOINCREMENT, workspace TEXT NOT NULL, "
        "experiment TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL, secrets TEXT NOT NULL DEFAULT '{}', "
        "state TEXT NOT NULL, seed INTEGER NOT NULL, created REAL NOT NULL, ended REAL, "
        "errors TEXT NOT NULL DEFAULT '[]', UNIQUE (workspace, experiment, name))",
        "CREATE TABLE IF NOT EXISTS sweep_trials (sweep_id INTEGER NOT NULL, number INTEGER NOT NULL, "
        "job TEXT NOT NULL, params TEXT NOT NULL, state TEXT NOT NULL, value REAL, "
        "intermediate TEXT NOT NULL DEFAULT '{}', system_attrs TEXT NOT NULL DEFAULT '{}', "
        "created REAL NOT NULL, ended REAL, pruned_step INTEGER, pruned_at REAL, metric_time REAL, "
        "submitted INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY (sweep_id, number))",
    ),
    # 5: a submission costs the same however many jobs exist. Counts it needs are kept by triggers, in
    # the transaction that changes the jobs: each experiment's jobs, and each cluster's queued jobs per
    # priority (the queue position of a job just submitted, the last of its priority, is a sum of these).
    (
        "ALTER TABLE experiments ADD COLUMN job_count INTEGER NOT NULL DEFAULT 0",
        "UPDATE experiments SET job_count = (SELECT COUNT(*) FROM jobs"
        " WHERE jobs.workspace = experiments.workspace AND jobs.experiment = experiments.name)",
        "CREATE TRIGGER experiment_job_added AFTER INSERT ON jobs BEGIN"
        " UPDATE experiments SET job_count = job_count + 1 WHERE workspace = NEW.workspace AND name = NEW.experiment;"
        " END",
        "CREATE TRIGGER experiment_job_deleted AFTER DELETE ON jobs BEGIN"
        " UPDATE experiments SET job_count = job_count - 1 WHERE workspace = OLD.workspace AND name = OLD.experiment;"
        " END",
        "CREATE TABLE queued_counts (workspace TEXT NOT NULL, cluster TEXT NOT NULL, priority INTEGER NOT NULL,"
        " queued INTEGER NOT NULL, PRIMARY KEY (workspace, cluster, priority)) WITHOUT ROWID",
        "INSERT INTO queued_counts SELECT workspace, cluster, priority, COUNT(*) FROM jobs"
        " WHERE state = 'queued' GROUP BY workspace, cluster, priority",
        f"CREATE TRIGGER job_queued_added AFTER INSERT ON jobs WHEN NEW.state = 'queued' BEGIN {_COUNT_IN_NEW} END",
        f"CREATE TRIGGER job_queued_deleted AFTER DELETE ON jobs WHEN OLD.state = 'queued' BEGIN {_COUNT_OUT_OLD} END",
        "CREATE TRIGGER job_queued_changed AFTER UPDATE OF state, workspace, cluster, priority ON jobs"
        f" WHEN OLD.state = 'queued' OR NEW.state = 'queued' BEGIN {_COUNT_OUT_OLD} {_COUNT_IN_NEW} END",
    ),
    # 6: where each of a job's output directories (and stdouterr) was put: {id: [datastore, path]}
    # (core/placement.py), so that listing finds them after the mounts it resolved from are gone.
    ("ALTER TABLE jobs ADD COLUMN placements TEXT NOT NULL DEFAULT '{}'",),
    # 7: secret values sealed with the store's key (core/sealing.py), and the check that the key is the right one.
    ("CREATE TABLE IF NOT EXISTS sealing (value TEXT NOT NULL)", lambda store: store.seal_all()),
    # 8: how many attempts of a job in a row the service's stopping interrupted (lifecycle.MAX_INTERRUPTIONS).
    ("ALTER TABLE jobs ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0",),
)
SCHEMA_VERSION = len(MIGRATIONS)
SEALED_SINCE = 7  # stores at older versions (and their backups) kept secret values in clear

Record = TypeVar("Record")
JSON_COLUMNS = (
    "spec", "secrets", "config", "errors", "node_ids", "info", "tags", "tracking", "params", "intermediate",
    "system_attrs", "placements",
)  # fmt: skip
_BRIEF_COLUMNS = "id, workspace, cluster, priority, state, started, node_ids"


class RecordGone(LookupError):
    """A record the caller relied on is not in the store (a bug, or a change behind the service's back)."""


def _existing(record: Record | None, kind: str, key: object) -> Record:
    if record is None:
        raise RecordGone(f"{kind} {key} is not in the store")
    return record


class Store:
    """One connection shared by the service's threads, serialised by a lock."""

    def __init__(self, path: str):
        self.path = path
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except OSError as failure:
            raise storage_failure(failure) or failure from None
        check_writable(os.path.dirname(path))
        fresh = not os.path.lexists(path)
        if not fresh:
            check_store_file(path)
        self._lock = threading.RLock()
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._connection.row_factory = sqlite3.Row
        if fresh:
            os.chmod(path, 0o600)  # the store holds secret values (sealed: core/sealing.py)
        self._depth = 0
        try:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            # What a row held before an update is overwritten, not left in a free page (a clear secret sealed
            # by migration 7, a deleted job's secrets).
            self._connection.execute("PRAGMA secure_delete=ON")
            if not fresh:
                check_opened(self._connection, path)
            self._connection.executescript(SCHEMA)
            self.box: SecretBox = SecretBox.for_store(path, store_sealed(self._connection))
            self._migrate(backup=not fresh)
            with self.transaction():
                self.box.check(self._connection, path)
        except sqlite3.DatabaseError as failure:
            self._connection.close()
            raise storage_failure(failure, path) or StoreDamaged(path, f"cannot be read ({failure})") from None
        except BaseException:
            self._connection.close()
            raise
        self._json_in_sql = True  # json_extract() available; job_briefs() finds out otherwise

    def schema_version(self) -> int:
        with self._lock:
            version: int = self._connection.execute("PRAGMA user_version").fetchone()[0]
            return version

    def seal_all(self) -> None:
        """Seals what the store kept in clear (migration 7, inside its transaction)."""
        self.box.seal_all(self._connection)

    def _migrate(self, backup: bool) -> None:
        first = self.schema_version()
        if backup and first < SCHEMA_VERSION:
            copy = back_up(self._connection, self.path, first)
            if first < SEALED_SINCE:
                seal_file(copy, self.box)  # the copy must not keep in clear what the store is about to seal
        self._step()
        if backup and first < SEALED_SINCE <= self.schema_version():
            # An older store's pages that held clear values are rewritten, and the log that held them emptied.
            self._connection.execute("VACUUM")
            self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _step(self) -> None:
        while True:
            with self.transaction():  # re-read inside: another process may have just upgraded it
                version = self.schema_version()
                if version > SCHEMA_VERSION:
                    raise BatchAIError(
                        "StoreTooNew",
                        f"{self.path} has schema version {version}, written by a "
                        f"newer batchai (this one knows up to {SCHEMA_VERSION}); "
                        "upgrade batchai, or set BATCHAI_HOME to another directory",
                        status=409,
                    )
                if version == SCHEMA_VERSION:
                    return
                for statement in MIGRATIONS[version]:
                    if callable(statement):
                        statement(self)
                    else:
                        self._connection.execute(statement)
                self._connection.execute(f"PRAGMA user_version = {version + 1}")

    def holds_nothing(self) -> bool:
        """No job and no cluster: what a new store, or one that replaced a lost store, holds."""
        with self._lock:
            return not self._connection.execute(
                "SELECT EXISTS (SELECT 1 FROM jobs) OR EXISTS (SELECT 1 FROM clusters)"
            ).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """All writes inside commit together or not at all; transactions nest."""
        with self._lock:
            outermost = self._depth == 0
            if outermost:
                self._connection.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outermost:
                    self._connection.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outermost:
                self._connection.execute("COMMIT")

    # -- generic helpers -------------------------------------------------------------------

    def _decode(self, row: sqlite3.Row) -> dict[str, Any]:
        record = dict(row)
        for column in JSON_COLUMNS:
            if column in record and isinstance(record[column], str):
                record[column] = self.box.decode(column, record[column])
        return record

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [self._decode(row) for row in self._connection.execute(sql, args).fetchall()]

    def query_one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        with self._lock:
            row = self._connection.execute(sql, args).fetchone()
        return None if row is None else self._decode(row)

    def insert(self, table: str, **values: Any) -> int:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._lock:
            cursor = self._connection.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({marks})", [self.box.encode(c, v) for c, v in values.items()]
            )
        if cursor.lastrowid is None:  # sqlite3 sets it after every INSERT of one row
            raise RuntimeError(f"inserting into {table} gave no row id")
        return cursor.lastrowid

    def update(self, table: str, where: dict[str, Any], **values: Any) -> int:
        assignments = ", ".join(f"{column} = ?" for column in values)
        condition = " AND ".join(f"{column} = ?" for column in where)
        with self._lock:
            cursor = self._connection.execute(
                f"UPDATE {table} SET {assignments} WHERE {condition}",
                [self.box.encode(c, v) for c, v in values.items()] + list(where.values()),
            )
            return cursor.rowcount

    def delete(self, table: str, **where: Any) -> int:
        condition = " AND ".join(f"{column} = ?" for column in where)
        with self._lock:
            return self._connection.execute(f"DELETE FROM {table} WHERE {condition}", list(where.values())).rowcount

    # -- named lookups used by several callers --------------------------------------------

    def _job(self, sql: str, *args: Any) -> Job | None:
        row = self.query_one(sql, *args)
        return None if row is None else Job.from_row(row)

    def _jobs(self, sql: str, *args: Any) -> list[Job]:
        return [Job.from_row(row) for row in self.query(sql, *args)]

    def job(self, job_id: int) -> Job | None:
        return self._job("SELECT * FROM jobs WHERE id = ?", job_id)

    def existing_job(self, job_id: int) -> Job:
        """The job, which the caller knows is there (it placed, started or just read it)."""
        return _existing(self.job(job_id), "job", job_id)

    def job_by_name(self, workspace: str, experiment: str, name: str) -> Job | None:
        return self._job(
            "SELECT * FROM jobs WHERE workspace = ? AND experiment = ? AND name = ?", workspace, experiment, name
        )

    def jobs_in_state(self, *states: str) -> list[Job]:
        marks = ", ".join("?" for _ in states)
        return self._jobs(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id", *states)

    def jobs_of_cluster(self, workspace: str, cluster: str, *states: str) -> list[Job]:
        """The cluster's jobs in `states`, in id order."""
        marks = ", ".join("?" for _ in states)
        return self._jobs(
            f"SELECT * FROM jobs WHERE workspace = ? AND cluster = ? AND state IN ({marks}) ORDER BY id",
            workspace,
            cluster,
            *states,
        )

    def jobs_of(self, workspace: str, experiment: str | None = None) -> list[Job]:
        """A workspace's jobs, or one experiment's, in id order."""
        if experiment is None:
            return self._jobs("SELECT * FROM jobs WHERE workspace = ? ORDER BY id", workspace)
        return self._jobs(
            "SELECT * FROM jobs WHERE workspace = ? AND experiment = ? ORDER BY id", workspace, experiment
        )

    def job_briefs(
        self, *states: str, workspace: str | None = None, cluster: str | None = None, first: int | None = None
    ) -> list[JobBrief]:
        """Jobs in `states` with only what queueing and scheduling read: id, workspace, cluster,
        priority, state, started, node_ids, node_count, max_wall_clock_seconds. SQLite pulls the
        two spec fields out itself, so the engine's every cycle does not decode every queued
        job's whole spec (that made a long queue O(queue) JSON work per wake-up). In id order, or
        with `first` only the first that many in queue order (larger priority first, then lower id)."""
        marks = ", ".join("?" for _ in states)
        args: tuple[Any, ...] = states
        where = f"FROM jobs WHERE state IN ({marks})"
        if workspace is not None and cluster is not None:  # one cluster's jobs
            where, args = where + " AND workspace = ? AND cluster = ?", (*states, workspace, cluster)
        if first is None:
            where += " ORDER BY id"
        else:
            where, args = where + " ORDER BY priority DESC, id LIMIT ?", (*args, first)
        with self._lock:
            if self._json_in_sql:
                try:
                    rows = self._connection.execute(
                        f"SELECT {_BRIEF_COLUMNS}, json_extract(spec, '$.node_count'), "
                        f"json_extract(spec, '$.max_wall_clock_seconds') {where}",
                        args,
                    ).fetchall()
                except sqlite3.OperationalError:  # an SQLite built without its JSON functions
                    self._json_in_sql = False
            if not self._json_in_sql:
                rows = [
                    (*row[:-1], spec["node_count"], spec["max_wall_clock_seconds"])
                    for row in self._connection.execute(f"SELECT {_BRIEF_COLUMNS}, spec {where}", args)
                    for spec in (json.loads(row[-1]),)
                ]
        return [
            JobBrief(
                id=row[0],
                workspace=row[1],
                cluster=row[2],
                priority=row[3],
                state=row[4],
                started=row[5],
                node_ids=json.loads(row[6]) if row[6] != "[]" else [],  # a queued job's "[]" needs no decoding
                node_count=row[7],
                max_wall_clock_seconds=row[8],
            )
            for row in rows
        ]

    def job_page(
        self, workspace: str, experiment: str | None, state: str | None, skip: int, limit: int | None
    ) -> tuple[list[Job], bool]:
        """Up to `limit` (None: all) jobs of `workspace`, optionally of one experiment and in one
        state, in id order from the `skip`th on, and whether more follow. The page's ids come from
        an index alone, so only its own rows are read and decoded."""
        conditions, args = ["workspace = ?"], [workspace]
        for column, value in (("experiment", experiment), ("state", state)):
            if value is not None:
                conditions, args = conditions + [f"{column} = ?"], args + [value]
        rows = self._jobs(
            f"SELECT * FROM jobs WHERE id IN (SELECT id FROM jobs WHERE {' AND '.join(conditions)} "
            "ORDER BY id LIMIT ? OFFSET ?) ORDER BY id",
            *args,
            -1 if limit is None else limit + 1,
            skip,
        )
        if limit is None or len(rows) <= limit:
            return rows, False
        return rows[:limit], True

    def queued_ahead(self, job: Job) -> int:
        """How many queued jobs of `job`'s cluster come before it in scheduler.order_queue's order
        (larger priority first, then lower id): counted in the queue index, not loaded."""
        return self._queued_between(job.workspace, job.cluster, None, job)

    def queued_at_or_above(self, workspace: str, cluster: str, priority: int) -> int:
        """How many jobs are queued on the cluster with at least `priority`: from the kept counts, so as
        cheap with 100,000 jobs as with 10. For the job submitted last, its queue position."""
        with self._lock:
            count: int = self._connection.execute(
                "SELECT COALESCE(SUM(queued), 0) FROM queued_counts"
                " WHERE workspace = ? AND cluster = ? AND priority >= ?",
                (workspace, cluster, priority),
            ).fetchone()[0]
            return count

    def queue_positions(self, jobs: list[Job]) -> dict[int, int]:
        """{id: 1-based queue position} of the queued ones among `jobs` (as scheduler.queue_positions
        gives for the whole queue). Each cluster's are counted from one to the next in queue
        order, so a page of them costs about one count up to its last, not one count per job."""
        queues: dict[tuple[str, str], list[Job]] = {}
        for job in jobs:
            if job.state == "queued":
                queues.setdefault((job.workspace, job.cluster), []).append(job)
        positions = {}
        for (workspace, cluster), queued in queues.items():
            position, previous = 0, None
            for job in sorted(queued, key=lambda j: (-j.priority, j.id)):
                position += self._queued_between(workspace, cluster, previous, job) + 1
                positions[job.id] = position
                previous = job
        return positions

    def _queued_between(self, workspace: str, cluster: str, after: Job | None, before: Job) -> int:
        """Queued jobs of the cluster strictly after `after` (None: from the head) and before
        `before` in queue order, as a sum of ranges the queue index answers directly."""
        ranges: list[tuple[Any, ...]] = [("priority = ? AND id < ?", before.priority, before.id)]
        if after is None:
            ranges.append(("priority > ?", before.priority))
        elif after.priority == before.priority:
            ranges = [("priority = ? AND id > ? AND id < ?", before.priority, after.id, before.id)]
        else:
            ranges += [
                ("priority > ? AND priority < ?", before.priority, after.priority),
                ("priority = ? AND id > ?", after.priority, after.id),
            ]
        queue = "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND workspace = ? AND cluster = ? AND "
        sql = "SELECT " + " + ".join(f"({queue}{condition})" for condition, *_ in ranges)
        args = [value for _, *values in ranges for value in (workspace, cluster, *values)]
        with self._lock:
            count: int = self._connection.execute(sql, args).fetchone()[0]
            return count

    def cluster(self, workspace: str, name: str) -> Cluster | None:
        row = self.query_one("SELECT * FROM clusters WHERE workspace = ? AND name = ?", workspace, name)
        return None if row is None else Cluster.from_row(row)

    def cluster_uuid(self, workspace: str, name: str) -> str | None:
        """The cluster's uuid (a cluster made again under the same name gets a new one), without
        decoding its spec: what callers that only need what never changes for a cluster look up."""
        with self._lock:
            row = self._connection.execute(
                "SELECT uuid FROM clusters WHERE workspace = ? AND name = ?", (workspace, name)
            ).fetchone()
        return None if row is None else str(row[0])

    def existing_cluster(self, workspace: str, name: str) -> Cluster:
        """The cluster, which the caller knows is there (its worker is running its cycle)."""
        return _existing(self.cluster(workspace, name), "cluster", f"{workspace}/{name}")

    def clusters_of(self, workspace: str) -> list[Cluster]:
        """A workspace's clusters, by name."""
        return [
            Cluster.from_row(row)
            for row in self.query("SELECT * FROM clusters WHERE workspace = ? ORDER BY name", workspace)
        ]

    def datastore_row(self, workspace: str, name: str) -> DatastoreRow | None:
        row = self.query_one("SELECT * FROM datastores WHERE workspace = ? AND name = ?", workspace, name)
        return None if row is None else DatastoreRow.from_row(row)

    def datastores_of(self, workspace: str) -> list[DatastoreRow]:
        """A workspace's datastores, by name."""
        return [
            DatastoreRow.from_row(row)
            for row in self.query("SELECT * FROM datastores WHERE workspace = ? ORDER BY name", workspace)
        ]

    def nodes_of(self, workspace: str, cluster: str) -> list[Node]:
        return [
            Node.from_row(row)
            for row in self.query(
                "SELECT * FROM nodes WHERE workspace = ? AND cluster = ? ORDER BY id", workspace, cluster
            )
        ]

    def node(self, node_id: int) -> Node | None:
        row = self.query_one("SELECT * FROM nodes WHERE id = ?", node_id)
        return None if row is None else Node.from_row(row)

    def existing_node(self, node_id: int) -> Node:
        """The node, which the caller knows is there (a job's claimed node, one just provisioned)."""
        return _existing(self.node(node_id), "node", node_id)

    def tasks_of(self, job_id: int, attempt: int | None = None) -> list[Task]:
        if attempt is None:
            rows = self.query("SELECT * FROM tasks WHERE job_id = ? ORDER BY id", job_id)
        else:
            rows = self.query("SELECT * FROM tasks WHERE job_id = ? AND attempt = ? ORDER BY id", job_id, attempt)
        return [Task.from_row(row) for row in rows]

    # -- states: only ever moved by an event of core/lifecycle.py's tables ----------------

    def set_job_state(self, job_id: int, event: str, **values: Any) -> lifecycle.Transition | None:
        """Moves the job by `event` and writes `values` with it; None when the job is gone.
        Raises lifecycle.IllegalTransition, writing nothing, for a pair the job table lacks."""
        return self._move("jobs", lifecycle.job_transition, job_id, event, values)

    def set_node_state(self, node_id: int, event: str, **values: Any) -> lifecycle.Transition | None:
        return self._move("nodes", lifecycle.node_transition, node_id, event, values)

    def set_task_state(self, task_id: int, event: str, **values: Any) -> lifecycle.Transition | None:
        return self._move("tasks", lifecycle.task_transition, task_id, event, values)

    def record_killed(self, tasks: list[Task]) -> None:
        """Records each running task of `tasks` killed."""
        now = time.time()
        with self.transaction():
            for task in tasks:
                if task.state == lifecycle.TaskState.RUNNING:
                    self.set_task_state(task.id, lifecycle.TaskEvent.KILLED, ended=now)

    def _move(
        self,
        table: str,
        step: Callable[[str, str], lifecycle.Transition],
        row_id: int,
        event: str,
        values: dict[str, Any],
    ) -> lifecycle.Transition | None:
        with self._lock:  # the state read and the write are one step for every thread
            row = self.query_one(f"SELECT state FROM {table} WHERE id = ?", row_id)
            if row is None:
                return None
            transition = step(row["state"], event)
            if transition.state != row["state"] and table != "tasks":
                values = dict(values, state_since=time.time())
            self.update(table, {"id": row_id}, state=transition.state, **values)
            return transition
