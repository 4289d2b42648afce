"""Jobs on clusters of a scheduler backend (Slurm): that scheduler, not ours, allocates the nodes and
runs the gang. The hand-over mirrors the scheduler's nodes into the store, submits queued jobs in
queue order (within the cluster's cap on nodes in use), follows each through the backend's statuses,
and ends it through the JobRunner, so retries, archived logs and events behave as on every backend.

A job's phase says how far it got: "" queued with us, "submitted" queued in the scheduler, "main"
running there. The backend keeps what it needs to find an attempt again (its own job id) under the
attempt's key, so a restarted service picks every submitted job up where it was.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

from ..ports.compute import GANG_ENDED, Backend, GangRequest, GangStatus, SchedulerBackend, SchedulerUnavailable
from . import views
from .events import EventBus
from .jobrun import JobRunner, error
from .lifecycle import JobEvent, TaskEvent, reported_node_event
from .models import DEFAULT_MAX_WALL_CLOCK_SECONDS
from .records import Cluster, Job
from .scheduler import WALL_CLOCK_REASON, format_duration, order_queue
from .store import Store

log = logging.getLogger("batchai")

# How often a cluster's nodes are read from the scheduler (sinfo is cheap, but not free on big sites).
NODE_SYNC_SECONDS = 5.0
SUBMITTED = "submitted"


def attempt_key(job: Job) -> str:
    return f"{job.uuid}-{job.attempt}"


class HandOver:
    def __init__(self, store: Store, events: EventBus, runner: JobRunner, backends: Mapping[str, Backend]):
        self.store = store
        self.events = events
        self.runner = runner
        self.backends = backends
        self._nodes_synced: dict[tuple[str, str], float] = {}
        self._waiting: dict[int, str] = {}  # job id → why it still waits (the scheduler's reason, our cap)

    def owns(self, cluster: Cluster | None) -> bool:
        return cluster is not None and isinstance(self.backends.get(cluster.spec.backend), SchedulerBackend)

    def _backend(self, cluster: Cluster) -> SchedulerBackend:
        backend = self.backends[cluster.spec.backend]
        assert isinstance(backend, SchedulerBackend), "only clusters this hand-over owns get here"
        return backend

    def waiting_reason(self, job: Job) -> str:
        """Why a queued job of a scheduler cluster still waits, as last seen ("" when unknown)."""
        return self._waiting.get(job.id, "")

    # -- the engine's cycle ---------------------------------------------------------------------

    def cycle(self, clusters: list[Cluster]) -> None:
        for cluster in clusters:
            try:
                try:
                    self._sync_nodes(cluster)
                except SchedulerUnavailable as failure:  # an outage: nothing new is handed over, nothing fails
                    self._unavailable(cluster, failure.message)
                    self._follow(cluster)  # what the shared files tell still moves jobs on
                    continue
                self._follow(cluster)
                self._submit_queued(cluster)
            except SchedulerUnavailable as failure:
                self._unavailable(cluster, failure.message)
            except Exception:  # one broken scheduler must not stop the other clusters
                log.exception("batchai: handing jobs of cluster %s to %s failed", cluster.name, cluster.spec.backend)

    def _jobs(self, cluster: Cluster, *states: str) -> list[Job]:
        return self.store.jobs_of_cluster(cluster.workspace, cluster.name, *states)

    # -- nodes -------------------------------------------------------------------------------

    def _sync_nodes(self, cluster: Cluster, force: bool = False) -> None:
        key = (cluster.workspace, cluster.name)
        if not force and time.monotonic() - self._nodes_synced.get(key, float("-inf")) < NODE_SYNC_SECONDS:
            return
        self._nodes_synced[key] = time.monotonic()
        reported = {node.name: node for node in self._backend(cluster).scheduler_nodes(cluster)}
        self._set_unavailable_error(cluster, None)
        known = {node.name: node for node in self.store.nodes_of(*key)}
        now = time.time()
        with self.store.transaction():
            for name, row in known.items():
                if name not in reported:
                    self.store.delete("nodes", id=row.id)
            for name, node in reported.items():
                info = {"mpi_host": name, "cpus": node.cpus, "gpus": node.gpus, "root": ""}
                errors = (
                    [error("NodeUnusable", f"{name}: {node.reason}")]
                    if node.state == "unusable" and node.reason
                    else []
                )
                stored = known.get(name)
                if stored is None:
                    self.store.insert(
                        "nodes",
                        workspace=key[0],
                        cluster=key[1],
                        name=name,
                        state=node.state,
                        ip=node.ip,
                        state_since=now,
                        info=info,
                        errors=errors,
                    )
                elif (stored.state, stored.ip, stored.info, stored.errors) != (node.state, node.ip, info, errors):
                    if stored.state != node.state:
                        self.store.set_node_state(
                            stored.id, reported_node_event(node.state), ip=node.ip, info=info, errors=errors
                        )
                    else:
                        self.store.update("nodes", {"id": stored.id}, ip=node.ip, info=info, errors=errors)
            # The cluster's size is the scheduler's: the target follows it, so the view is steady.
            self.store.update("clusters", {"workspace": key[0], "name": key[1]}, target=len(reported))

    def _unavailable(self, cluster: Cluster, message: str) -> None:
        log.warning("batchai: cluster %s: %s", cluster.name, message)
        self._nodes_synced.pop((cluster.workspace, cluster.name), None)  # ask again next cycle
        self._set_unavailable_error(cluster, message)
        for job in self._jobs(cluster, "queued"):
            if job.phase != SUBMITTED:
                self._waiting[job.id] = f"{message}; the job is handed over once the scheduler answers"

    def _set_unavailable_error(self, cluster: Cluster, message: str | None) -> None:
        """Shows (or, once it answers again, clears) the scheduler's outage in the cluster's errors."""
        row = self.store.cluster(cluster.workspace, cluster.name)
        if row is None:
            return
        kept = [e for e in row.errors if e.get("code") != SchedulerUnavailable.__name__]
        errors = kept + ([error(SchedulerUnavailable.__name__, message)] if message else [])
        if errors != row.errors:
            self.store.update("clusters", {"workspace": cluster.workspace, "name": cluster.name}, errors=errors)

    # -- submitting ----------------------------------------------------------------------------

    def _submit_queued(self, cluster: Cluster) -> None:
        waiting = [job for job in self._jobs(cluster, "queued") if job.phase != SUBMITTED]
        if not waiting:
            return
        backend = self._backend(cluster)
        cap = backend.node_cap(cluster)
        in_use = sum(
            job.spec.node_count
            for job in self._jobs(cluster, "queued", "running", "terminating")
            if job.state != "queued" or job.phase == SUBMITTED
        )
        order = {
            brief.id: position for position, brief in enumerate(order_queue([views.queued_job(j) for j in waiting]))
        }
        for position, job in enumerate(sorted(waiting, key=lambda j: order[j.id])):
            need = job.spec.node_count
            if cap is not None and in_use + need > cap:
                # Queue order is kept: nothing overtakes the job that waits for the cap.
                note = (
                    f"held back by the maxNodesInUse of {cap} of cluster '{cluster.name}' "
                    f"({in_use} node(s) in use, {need} needed)"
                )
                for held in sorted(waiting, key=lambda j: order[j.id])[position:]:
                    self._waiting[held.id] = note
                return
            self._waiting.pop(job.id, None)
            self._submit(cluster, backend, job)
            in_use += need

    def _submit(self, cluster: Cluster, backend: SchedulerBackend, job: Job) -> None:
        context, _ = self.runner.context(dataclasses.replace(job, node_ids=[]))
        spec = job.spec
        request = GangRequest(
            key=attempt_key(job),
            job_name=job.name,
            context=context,
            node_count=spec.node_count,
            max_wall_clock_seconds=spec.max_wall_clock_seconds,
            explicit_wall_clock=spec.max_wall_clock_seconds != DEFAULT_MAX_WALL_CLOCK_SECONDS,
            priority=job.priority,
        )
        try:
            backend.submit(cluster, request)
        except SchedulerUnavailable:
            raise  # not the job's fault: it stays queued and is submitted once the scheduler answers
        except Exception as failure:  # the scheduler's own words say what it refused
            log.warning("batchai: submitting job %s to %s failed: %s", job.name, backend.name, failure)
            self.runner.end(
                job,
                JobEvent.SUBMISSION_FAILED,
                None,
                [error("JobSubmissionFailed", f"{backend.name} did not take the job: {failure}")],
            )
            return
        self.store.update("jobs", {"id": job.id}, phase=SUBMITTED)

    # -- following -------------------------------------------------------------------------------

    def _follow(self, cluster: Cluster) -> None:
        jobs = [
            job
            for job in self._jobs(cluster, "queued", "running", "terminating")
            if job.state != "queued" or job.phase == SUBMITTED
        ]
        if not jobs:
            return
        statuses = self._backend(cluster).poll(cluster, [attempt_key(job) for job in jobs])
        for job in jobs:
            status = statuses.get(attempt_key(job))
            if status is not None:
                self._apply(cluster, job, status)

    def _apply(self, cluster: Cluster, job: Job, status: GangStatus) -> None:
        if status.state == "queued":
            if status.reason and status.reason != "None":
                self._waiting[job.id] = f"waiting in {self._backend(cluster).name}: {status.reason}"
            return
        self._waiting.pop(job.id, None)
        node_ids = self._node_ids(cluster, status.nodes)
        if job.state == "queued":
            self.store.set_job_state(
                job.id, JobEvent.SCHEDULER_STARTED, phase="main", started=time.time(), node_ids=node_ids, exit_code=None
            )
            job = self.store.existing_job(job.id)
            self.events.publish("job", **_job_key(job), state="running", attempt=job.attempt)
        elif node_ids and node_ids != job.node_ids:
            self.store.update("jobs", {"id": job.id}, node_ids=node_ids)
        self._record_tasks(cluster, job, status)
        if status.state not in GANG_ENDED:
            self._check_wall_clock(cluster, job)
            return
        self._end(job, status)

    def _node_ids(self, cluster: Cluster, names: tuple[str, ...]) -> list[int]:
        if not names:
            return []
        by_name = {n.name: n.id for n in self.store.nodes_of(cluster.workspace, cluster.name)}
        if any(name not in by_name for name in names):
            self._sync_nodes(cluster, force=True)
            by_name = {n.name: n.id for n in self.store.nodes_of(cluster.workspace, cluster.name)}
        return [by_name[name] for name in names if name in by_name]

    def _record_tasks(self, cluster: Cluster, job: Job, status: GangStatus) -> None:
        if not status.tasks:
            return
        rows = {row.name: row for row in self.store.tasks_of(job.id, job.attempt)}
        by_name = {n.name: n.id for n in self.store.nodes_of(cluster.workspace, cluster.name)}
        now = time.time()
        with self.store.transaction():
            for task in status.tasks:
                row = rows.get(task.name)
                ended = (task.ended or now) if task.state != "running" else None
                if row is None:
                    self.store.insert(
                        "tasks",
                        job_id=job.id,
                        attempt=job.attempt,
                        phase=task.phase,
                        name=task.name,
                        node_id=by_name.get(task.node, 0),
                        role=task.role,
                        rank=task.rank,
                        required=int(task.required),
                        run_dir="",
                        stdout=task.stdout,
                        stderr=task.stderr,
                        state=task.state,
                        exit_code=task.exit_code,
                        launched=task.launched or now,
                        ended=ended,
                    )
                elif row.state == "running" and task.state != "running":
                    self.store.set_task_state(row.id, TaskEvent(task.state), exit_code=task.exit_code, ended=ended)

    def _end(self, job: Job, status: GangStatus) -> None:
        # what still runs is killed with the allocation
        self.store.record_killed(self.store.tasks_of(job.id, job.attempt))
        job = self.store.existing_job(job.id)
        if job.state == "terminating":
            self.runner.end(job, JobEvent.TASKS_STOPPED, status.exit_code)
        elif status.state == "succeeded":
            self.runner.end(job, JobEvent.SUCCEEDED, 0)
        elif status.state in ("failed", "lost"):
            self.runner.attempt_failed(job, status.error or error("JobFailed", "the job failed"), status.exit_code)
        elif status.state == "timeout":
            self.runner.end(job, JobEvent.SCHEDULER_ENDED, status.exit_code, [self._wall_clock_error(job)])
        else:
            self.runner.end(
                job,
                JobEvent.SCHEDULER_ENDED,
                status.exit_code,
                [status.error or error("JobCancelled", "the job was cancelled in the scheduler")],
            )

    @staticmethod
    def _wall_clock_error(job: Job) -> dict[str, Any]:
        limit = format_duration(job.spec.max_wall_clock_seconds)
        return error(WALL_CLOCK_REASON, f"Job exceeded its maximum wall-clock time of {limit} and was killed")

    def _check_wall_clock(self, cluster: Cluster, job: Job) -> None:
        if (
            job.state == "running"
            and job.started is not None
            and time.time() - job.started >= job.spec.max_wall_clock_seconds
        ):
            self.terminate(job, self._wall_clock_error(job))

    # -- user actions ------------------------------------------------------------------------------

    def terminate(self, job: Job, failure: dict[str, Any]) -> None:
        """Cancels the job in the scheduler; it fails with `failure` once the scheduler has ended it."""
        job = self.store.existing_job(job.id)
        self._waiting.pop(job.id, None)
        if job.state == "queued" and job.phase != SUBMITTED:
            self.runner.end(job, JobEvent.TERMINATE, None, [failure])
            return
        if job.state not in ("queued", "running"):
            return
        self.cancel(job)
        self.store.set_job_state(job.id, JobEvent.TERMINATE_HANDED_OVER, errors=job.errors + [failure])
        self.events.publish("job", **_job_key(job), state="terminating")

    def cancel(self, job: Job) -> None:
        """Tells the scheduler to drop the job's current attempt, if it was ever handed over."""
        if job.state == "queued" and job.phase != SUBMITTED:
            return
        if job.state not in ("queued", "running", "terminating"):
            return
        cluster = self.store.cluster(job.workspace, job.cluster)
        if cluster is None or not self.owns(cluster):
            return
        self._backend(cluster).cancel(cluster, attempt_key(job))
        # they end with the allocation; nothing of ours to signal
        self.store.record_killed(self.store.tasks_of(job.id, job.attempt))

    def forget(self, job: Job) -> None:
        """Lets the backend drop what it kept for each attempt of a deleted job (control files)."""
        cluster = self.store.cluster(job.workspace, job.cluster)
        if cluster is not None and self.owns(cluster):
            for attempt in range(1, job.attempt + 1):
                self._backend(cluster).forget(cluster, f"{job.uuid}-{attempt}")


def _job_key(job: Job) -> dict[str, Any]:
    return {"workspace": job.workspace, "experiment": job.experiment, "name": job.name}
