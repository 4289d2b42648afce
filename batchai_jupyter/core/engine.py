"""The service's heart: one thread that, on every wake-up, keeps clusters at their size, moves
running jobs on, and applies the pure scheduler's decisions."""
from __future__ import annotations

import logging
import threading
import time

from . import scheduler
from .handover import HandOver
from .jobrun import JobRunner, error
from .lifecycle import JobEvent
from .nodes import NodeKeeper
from .store import Store

log = logging.getLogger("batchai")

# The engine is woken by every change it must react to; this is only the fallback cadence for
# what nobody announces (tasks re-attached after a restart, wall clocks, idle timeouts).
POLL_SECONDS = 0.5
# How many errors of removed unusable nodes a cluster keeps showing.
MAX_CLUSTER_ERRORS = 10


def cluster_key(workspace: str, name: str) -> str:
    return f"{workspace}/{name}"


class Engine:
    def __init__(self, store: Store, runner: JobRunner, keeper: NodeKeeper, handover: HandOver | None = None):
        self.store = store
        self.runner = runner
        self.keeper = keeper
        # Clusters of scheduler backends (Slurm) get whole jobs handed over instead of placed.
        self.handover = handover or HandOver(store, runner.events, runner, {})
        self.lock = threading.RLock()  # held while processes are started or stopped
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="batchai-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
            try:
                self.cycle()
            except Exception:  # keep the service alive; the log says what broke
                log.exception("batchai engine cycle failed")

    def cycle(self) -> None:
        with self.lock:
            clusters = self.store.query("SELECT * FROM clusters WHERE deleting = 0")
            handed = [c for c in clusters if self.handover.owns(c)]
            for cluster in clusters:
                if cluster not in handed:
                    self.keeper.reconcile(cluster)
            self.handover.cycle(handed)
            handed_keys = {cluster_key(c["workspace"], c["name"]) for c in handed}
            for job in self.store.jobs_in_state("running", "terminating"):
                if cluster_key(job["workspace"], job["cluster"]) not in handed_keys:
                    self.runner.advance(job)
            self._schedule()

    # -- scheduling ------------------------------------------------------------------------

    def _schedule(self) -> None:
        clusters = {cluster_key(c["workspace"], c["name"]): c
                    for c in self.store.query("SELECT * FROM clusters WHERE deleting = 0")
                    if not self.handover.owns(c)}
        nodes = self.store.query("SELECT * FROM nodes")
        cluster_views = [self._cluster_view(key, c, nodes) for key, c in clusters.items()]
        node_views = [scheduler.NodeView(n["id"], cluster_key(n["workspace"], n["cluster"]), n["state"],
                                         n["state_since"] if n["state"] in ("idle", "unusable") else None)
                      for n in nodes]
        # Briefs, not whole rows, and none while every node is busy: this runs on every wake-up
        # (each submit, each task end), so a long queue must not make each one cost more.
        running = [scheduler.RunningJob(j["id"], cluster_key(j["workspace"], j["cluster"]), tuple(j["node_ids"]),
                                        j["started"], j["max_wall_clock_seconds"])
                   for j in self.store.job_briefs("running") if cluster_key(j["workspace"], j["cluster"]) in clusters]
        queued = []
        if scheduler.needs_queue(cluster_views, node_views, running):
            queued = [scheduler.QueuedJob(j["id"], cluster_key(j["workspace"], j["cluster"]), j["priority"], j["id"],
                                          j["node_count"], j["max_wall_clock_seconds"])
                      for j in self.store.job_briefs("queued")]
        decisions = scheduler.plan(clusters=cluster_views, nodes=node_views, queued=queued, running=running,
                                   now=time.time())
        for decision in decisions:
            self._apply(decision, clusters)

    @staticmethod
    def _cluster_view(key: str, cluster: dict, nodes: list[dict]) -> scheduler.ClusterView:
        scale = cluster["spec"]["scale"]
        current = sum(1 for n in nodes if cluster_key(n["workspace"], n["cluster"]) == key and n["state"] != "leaving")
        return scheduler.ClusterView(
            key=key, mode=scale["mode"], target=cluster["target"], minimum=scale["minimum"],
            maximum=scale["maximum"], idle_seconds_before_scaledown=scale["idle_seconds_before_scaledown"],
            current_nodes=current)

    def _apply(self, decision, clusters: dict) -> None:
        if isinstance(decision, scheduler.StartJob):
            job = self.store.job(decision.job_id)
            try:
                self.runner.start(job, decision.node_ids)
            except Exception as failure:
                log.exception("starting job %s failed", job["name"])
                self.runner.end(job, JobEvent.START_FAILED, None,
                                [error("JobStartFailed", f"the job could not start: {failure}")])
        elif isinstance(decision, scheduler.KillJob):
            job = self.store.job(decision.job_id)
            self.runner.terminate(job, [error(decision.reason, decision.message)])
        elif isinstance(decision, scheduler.ScaleCluster):
            cluster = clusters[decision.cluster]
            self.store.update("clusters", {"workspace": cluster["workspace"], "name": cluster["name"]},
                              target=decision.target)
            self.keeper.reconcile(self.store.cluster(cluster["workspace"], cluster["name"]))
        elif isinstance(decision, scheduler.RemoveIdleNodes):
            cluster = clusters[decision.cluster]
            victims = [node for node in (self.store.node(node_id) for node_id in decision.node_ids)
                       if node is not None and node["state"] in ("idle", "unusable")]
            live = [n for n in self.store.nodes_of(cluster["workspace"], cluster["name"]) if n["state"] != "leaving"]
            # A removed unusable node's errors stay visible on the cluster (the latest few).
            lost = [e for node in victims if node["state"] == "unusable" for e in node["errors"]]
            errors = (self.store.cluster(cluster["workspace"], cluster["name"])["errors"] + lost)[-MAX_CLUSTER_ERRORS:]
            # The target drops first, so a reader never sees fewer nodes than a stale target.
            self.store.update("clusters", {"workspace": cluster["workspace"], "name": cluster["name"]},
                              target=len(live) - len(victims), errors=errors)
            for node in victims:
                self.keeper.remove(cluster, node)

    # -- user actions that stop processes ---------------------------------------------------

    def terminate_job(self, job: dict, code: str, message: str) -> None:
        with self.lock:
            job = self.store.job(job["id"])
            if self.handover.owns(self.store.cluster(job["workspace"], job["cluster"])):
                self.handover.terminate(job, error(code, message))
            elif job["state"] == "queued":
                self.runner.end(job, JobEvent.TERMINATE, None, [error(code, message)])
            elif job["state"] == "running":
                self.runner.terminate(job, [error(code, message)])
        self.wake()

    def delete_job(self, job: dict) -> None:
        with self.lock:
            job = self.store.job(job["id"])
            self.handover.cancel(job)
            if job["state"] in ("running", "terminating"):
                self.runner.end(job, JobEvent.DELETED)
            with self.store.transaction():
                self.store.delete("tasks", job_id=job["id"])
                self.store.delete("jobs", id=job["id"])
            self.handover.forget(job)
        self.wake()

    def delete_cluster(self, cluster: dict) -> None:
        with self.lock:
            self.store.update("clusters", {"workspace": cluster["workspace"], "name": cluster["name"]}, deleting=1)
            for job in self.store.query("SELECT * FROM jobs WHERE workspace = ? AND cluster = ? AND state IN "
                                        "('queued', 'running', 'terminating')", cluster["workspace"], cluster["name"]):
                self.handover.cancel(job)
                self.runner.end(job, JobEvent.CLUSTER_DELETED, None, [error(
                    "ClusterDeleted", f"cluster {cluster['name']} was deleted before the job finished")])
            for node in self.store.nodes_of(cluster["workspace"], cluster["name"]):
                self.keeper.remove(cluster, node)
            self.store.delete("clusters", workspace=cluster["workspace"], name=cluster["name"])
        self.wake()
