"""The service's heart. The engine thread only decides what each cluster needs looked at; the work
itself (keeping a cluster's nodes at its size, moving its running jobs on, starting what the pure
scheduler decides, handing jobs to a scheduler backend, and the user's terminate and delete) runs on
that cluster's own worker (core/workers.py). No lock is held across I/O: a cluster whose mount command,
host or scheduler is slow delays only its own work."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping

from ..errors import BatchAIError
from ..ports.compute import CloudClusters
from . import scheduler
from .handover import HandOver
from .jobrun import JobRunner, error
from .lifecycle import JobEvent
from .nodes import NodeKeeper
from .records import Cluster, Job, Node
from .store import Store
from .workers import ClusterWorkers

log = logging.getLogger("batchai")

# The engine is woken by every change it must react to; this is only the fallback cadence for
# what nobody announces (tasks re-attached after a restart, wall clocks, idle timeouts).
POLL_SECONDS = 0.5
# How many errors of removed unusable nodes a cluster keeps showing.
MAX_CLUSTER_ERRORS = 10
# How long Service.stop() waits for the cluster workers to finish what they are doing.
STOP_SECONDS = 10.0


# How many queued jobs a manual cluster's scheduling reads first (see Engine._schedule).
QUEUE_HEAD = 32


def cluster_key(workspace: str, name: str) -> str:
    return f"{workspace}/{name}"


def _free_after(
    decisions: list[scheduler.Decision], nodes: list[scheduler.NodeView], running: list[scheduler.RunningJob]
) -> bool:
    """Whether a node that is idle or preparing is left without a job once `decisions` start theirs."""
    taken = {n for job in running for n in job.node_ids}
    taken.update(n for d in decisions if isinstance(d, scheduler.StartJob) for n in d.node_ids)
    return any(n.state in ("idle", "preparing") and n.id not in taken for n in nodes)


class Engine:
    def __init__(
        self,
        store: Store,
        runner: JobRunner,
        keeper: NodeKeeper,
        handover: HandOver | None = None,
        periodic: Callable[[], Mapping[str, Callable[[], object]]] | None = None,
    ):
        self.store = store
        # Other work that runs in cycles on workers of its own: {worker key: cycle} (the sweeps' loops).
        self.periodic = periodic or dict
        self.runner = runner
        runner.wake = self.wake
        self.keeper = keeper
        # Clusters of scheduler backends (Slurm) get whole jobs handed over instead of placed.
        self.handover = handover or HandOver(store, runner.events, runner, {})
        self.workers = ClusterWorkers(store.path)
        self._wake = threading.Event()
        # Clusters whose last scheduling left no node a job could start on (see job_submitted).
        self._full: set[str] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.resume_deletions()
        self._thread = threading.Thread(target=self._loop, name="batchai-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        self.runner.stop_mounting()
        self.workers.stop(STOP_SECONDS)

    def wake(self) -> None:
        self._wake.set()

    def job_submitted(self, workspace: str, cluster: str) -> None:
        """A job was queued on the cluster: a cycle, unless the cluster's last scheduling left none of
        its nodes free. Then the job cannot start before a node frees up, and every change that frees
        one (a job's end, a terminate or delete, a resize, a node made ready) happens on the cluster's
        worker, which schedules again after it and reads the queue with this job in it. Under a burst
        of submissions this spares the cycle each would otherwise cost (a third of all cycles)."""
        if cluster_key(workspace, cluster) not in self._full:
            self.wake()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
            try:
                self.dispatch()
            except Exception:  # keep the service alive; the log says what broke
                log.exception("batchai engine cycle failed")

    def dispatch(self) -> None:
        """Asks every cluster's worker for a cycle (coalesced: a cluster still busy gets one more
        afterwards, not a backlog)."""
        keys = set()
        for row in self.store.query("SELECT workspace, name FROM clusters WHERE deleting = 0"):
            workspace, name = row["workspace"], row["name"]
            key = cluster_key(workspace, name)
            keys.add(key)
            self.workers.request_cycle(key, functools.partial(self.cluster_cycle, workspace, name))
        for key, cycle in self.periodic().items():
            keys.add(key)
            self.workers.request_cycle(key, cycle)
        self.workers.retire_idle(keys)
        self.workers.report_slow()

    def cluster_cycle(self, workspace: str, name: str) -> None:
        """One cluster's turn, on its worker: nodes, running jobs, then the scheduler's decisions."""
        cluster = self.store.cluster(workspace, name)
        if cluster is None or cluster.deleting:
            return
        if self.handover.owns(cluster):
            self.handover.cycle([cluster])
            return
        more_nodes = self.keeper.reconcile(cluster)
        for job in self.store.jobs_of_cluster(workspace, name, "running", "terminating"):
            self.runner.advance(job)
        self._schedule(self.store.cluster(workspace, name) or cluster)
        if more_nodes:
            self.wake()

    def _on_worker(self, workspace: str, cluster: str, what: str, action: Callable[[], object]) -> None:
        self.workers.run(cluster_key(workspace, cluster), what, action)
        self.wake()

    # -- scheduling ------------------------------------------------------------------------

    def _schedule(self, cluster: Cluster) -> None:
        key = cluster_key(cluster.workspace, cluster.name)
        clusters = {key: cluster}
        nodes = self.store.nodes_of(cluster.workspace, cluster.name)
        cluster_views = [self._cluster_view(key, cluster, nodes)]
        node_views = [
            scheduler.NodeView(n.id, key, n.state, n.state_since if n.state in ("idle", "unusable") else None)
            for n in nodes
        ]
        # Briefs, not whole rows, and none while every node is busy: this runs on every wake-up
        # (each submit, each task end), so a long queue must not make each one cost more.
        running = [
            scheduler.RunningJob(j.id, key, tuple(j.node_ids), j.started or 0.0, j.max_wall_clock_seconds)
            for j in self.store.job_briefs("running", workspace=cluster.workspace, cluster=cluster.name)
        ]
        manual = cluster.spec.scale.mode != "auto"
        decisions = []
        if scheduler.needs_queue(cluster_views, node_views, running):
            # A manual cluster's decisions for the head of its queue are those for the whole queue
            # once the head's starts take every free node: no job further back could start. Under a
            # long queue each job's start then reads a few queued jobs, not all of them.
            for first in (QUEUE_HEAD, None) if manual else (None,):
                queued = [
                    scheduler.QueuedJob(j.id, key, j.priority, j.id, j.node_count, j.max_wall_clock_seconds)
                    for j in self.store.job_briefs(
                        "queued", workspace=cluster.workspace, cluster=cluster.name, first=first
                    )
                ]
                decisions = scheduler.plan(
                    clusters=cluster_views, nodes=node_views, queued=queued, running=running, now=time.time()
                )
                if first is None or len(queued) < first or not _free_after(decisions, node_views, running):
                    break
        else:
            decisions = scheduler.plan(
                clusters=cluster_views, nodes=node_views, queued=[], running=running, now=time.time()
            )
        if manual and not _free_after(decisions, node_views, running):
            self._full.add(key)
        else:
            self._full.discard(key)
        for decision in decisions:
            self._apply(decision, clusters)

    @staticmethod
    def _cluster_view(key: str, cluster: Cluster, nodes: list[Node]) -> scheduler.ClusterView:
        scale = cluster.spec.scale
        current = sum(1 for n in nodes if cluster_key(n.workspace, n.cluster) == key and n.state != "leaving")
        return scheduler.ClusterView(
            key=key,
            mode=scale.mode,
            target=cluster.target,
            minimum=scale.minimum,
            maximum=scale.maximum,
            idle_seconds_before_scaledown=scale.idle_seconds_before_scaledown,
            current_nodes=current,
        )

    def _apply(self, decision: scheduler.Decision, clusters: dict[str, Cluster]) -> None:
        if isinstance(decision, scheduler.StartJob):
            job = self.store.existing_job(decision.job_id)
            try:
                self.runner.start(job, decision.node_ids)
            except Exception as failure:
                log.exception("starting job %s failed", job.name)
                self._full.discard(cluster_key(job.workspace, job.cluster))  # its nodes are free again
                self.runner.end(
                    job, JobEvent.START_FAILED, None, [error("JobStartFailed", f"the job could not start: {failure}")]
                )
        elif isinstance(decision, scheduler.KillJob):
            job = self.store.existing_job(decision.job_id)
            self.runner.terminate(job, [error(decision.reason, decision.message)])
        elif isinstance(decision, scheduler.ScaleCluster):
            cluster = clusters[decision.cluster]
            self.store.update(
                "clusters", {"workspace": cluster.workspace, "name": cluster.name}, target=decision.target
            )
            self.keeper.reconcile(self.store.existing_cluster(cluster.workspace, cluster.name))
        elif isinstance(decision, scheduler.RemoveIdleNodes):
            cluster = clusters[decision.cluster]
            victims = [
                node
                for node in (self.store.node(node_id) for node_id in decision.node_ids)
                if node is not None and node.state in ("idle", "unusable")
            ]
            live = [n for n in self.store.nodes_of(cluster.workspace, cluster.name) if n.state != "leaving"]
            # A removed unusable node's errors stay visible on the cluster (the latest few).
            lost = [e for node in victims if node.state == "unusable" for e in node.errors]
            errors = (self.store.existing_cluster(cluster.workspace, cluster.name).errors + lost)[-MAX_CLUSTER_ERRORS:]
            # The target drops first, so a reader never sees fewer nodes than a stale target.
            self.store.update(
                "clusters",
                {"workspace": cluster.workspace, "name": cluster.name},
                target=len(live) - len(victims),
                errors=errors,
            )
            for node in victims:
                self.keeper.remove(cluster, node)

    # -- user actions that stop processes: on the job's cluster's worker, waited for ---------

    def terminate_job(self, job: Job, code: str, message: str) -> None:
        def terminate() -> None:
            current = self.store.job(job.id)
            if current is None:
                return
            if self.handover.owns(self.store.cluster(current.workspace, current.cluster)):
                self.handover.terminate(current, error(code, message))
            elif current.state == "queued":
                self.runner.end(current, JobEvent.TERMINATE, None, [error(code, message)])
            elif current.state == "running":
                self.runner.terminate(current, [error(code, message)])

        self._on_worker(job.workspace, job.cluster, "terminating a job", terminate)

    def delete_job(self, job: Job) -> None:
        def delete() -> None:
            current = self.store.job(job.id)
            if current is None:
                return
            self.handover.cancel(current)
            if current.state in ("running", "terminating"):
                self.runner.end(current, JobEvent.DELETED)
            with self.store.transaction():
                self.store.delete("tasks", job_id=current.id)
                self.store.delete("jobs", id=current.id)
            self.handover.forget(current)

        self._on_worker(job.workspace, job.cluster, "deleting a job", delete)

    def delete_cluster(self, cluster: Cluster) -> None:
        workspace, name = cluster.workspace, cluster.name
        # Marked first, so no new cycle of the cluster starts while its worker gets to the deletion.
        self.store.update("clusters", {"workspace": workspace, "name": name}, deleting=1)
        key = cluster_key(workspace, name)
        self._full.discard(key)  # a cluster made again under this name starts without the old one's state
        if self.workers.run(key, "deleting the cluster", functools.partial(self._delete_cluster, workspace, name)):
            # A cloud's resources take minutes to go: the cluster is listed as deleting until they are gone.
            self.workers.start(
                key, "deleting the cluster's resources", functools.partial(self._delete_resources, workspace, name)
            )
        self.wake()

    def resume_deletions(self) -> None:
        """Finishes the deletions a stopped service left half done (a cloud's resource group going)."""
        for row in self.store.query("SELECT workspace, name FROM clusters WHERE deleting = 1"):
            workspace, name = row["workspace"], row["name"]

            def delete(workspace: str = workspace, name: str = name) -> None:
                if self._delete_cluster(workspace, name):
                    self._delete_resources(workspace, name)

            self.workers.start(cluster_key(workspace, name), "deleting the cluster", delete)

    def _delete_cluster(self, workspace: str, name: str) -> bool:
        """Ends the cluster's jobs and removes its nodes; True when its backend has resources of the
        cluster's own still to delete (CloudClusters), else the cluster is gone."""
        current = self.store.cluster(workspace, name)
        if current is None:
            return False
        for job in self.store.jobs_of_cluster(workspace, name, "queued", "running", "terminating"):
            self.handover.cancel(job)
            self.runner.end(
                job,
                JobEvent.CLUSTER_DELETED,
                None,
                [error("ClusterDeleted", f"cluster {name} was deleted before the job finished")],
            )
        for node in self.store.nodes_of(workspace, name):
            self.keeper.remove(current, node)
        if isinstance(self.keeper.backend_for(workspace, name), CloudClusters):
            return True
        self.store.delete("clusters", workspace=workspace, name=name)
        return False

    def _delete_resources(self, workspace: str, name: str) -> None:
        current = self.store.cluster(workspace, name)
        backend = self.keeper.backend_for(workspace, name)
        if current is None or not isinstance(backend, CloudClusters):
            return
        try:
            backend.delete_cluster(current)
        except BatchAIError as failure:  # shown on the cluster, listed again: deleting it again retries
            errors = (current.errors + [error(failure.code, failure.message)])[-MAX_CLUSTER_ERRORS:]
            self.store.update("clusters", {"workspace": workspace, "name": name}, errors=errors, deleting=0)
            return
        self.store.delete("clusters", workspace=workspace, name=name)
