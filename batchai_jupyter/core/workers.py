"""One worker thread per cluster: everything that touches a cluster's processes, hosts, networks or
disks runs on that cluster's worker, one piece of work at a time. A slow cluster (a mount command, an
SSH host that hangs, a scheduler that takes a minute to answer, a cloud API) therefore holds up only
itself: the engine thread and every other cluster carry on.

Work is either the cluster's periodic cycle (coalesced: asking again while one is waiting to run
adds nothing, asking while one runs makes one more run afterwards) or a user's action (terminate,
delete), which callers may wait for. The threads are daemons owned by the engine and stop with it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from ..errors import BatchAIError, storage_failure

log = logging.getLogger("batchai")

T = TypeVar("T")

# A piece of work running longer than this is reported in the service log (once per piece): a thread
# cannot be stopped from outside, but whoever reads the log learns which cluster is stuck and on what.
SLOW_WORK_SECONDS = 120.0


class ClusterWorker:
    """A cluster's own thread and its queue of work."""

    def __init__(self, key: str, store_path: str = ""):
        self.key = key
        self.store_path = store_path
        self.disk_failure: BatchAIError | None = None  # why the last cycle failed, when a disk was full/read-only
        self._queue: queue.Queue[tuple[str, Callable[[], object], Future[Any]] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._cycle_waiting = False  # a cycle is in the queue and has not started yet
        self._cycle_again = False  # a cycle was asked for while one ran
        self._cycle: Callable[[], object] | None = None
        self.busy_since: float | None = None
        self.busy_with = ""
        self._reported_slow = False
        self._thread = threading.Thread(target=self._run, name=f"batchai-cluster-{key}", daemon=True)
        self._thread.start()

    def request_cycle(self, cycle: Callable[[], object]) -> None:
        with self._lock:
            self._cycle = cycle
            if self._cycle_waiting:
                return
            if self.busy_with == "cycle":
                self._cycle_again = True
                return
            self._cycle_waiting = True
        self._queue.put(("cycle", self._run_cycle, Future()))

    def submit(self, what: str, action: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((what, action, future))
        return future

    def idle(self) -> bool:
        return self.busy_since is None and self._queue.empty()

    def stop(self) -> None:
        self._queue.put(None)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def report_if_slow(self, now: float) -> None:
        since = self.busy_since
        if since is not None and now - since > SLOW_WORK_SECONDS and not self._reported_slow:
            self._reported_slow = True
            log.warning(
                "batchai: cluster %s has been busy with %s for %.0f s; its other work waits, other "
                "clusters are not affected",
                self.key,
                self.busy_with,
                now - since,
            )

    def _run_cycle(self) -> None:
        with self._lock:
            self._cycle_waiting = False
            cycle = self._cycle
        if cycle is not None:
            cycle()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            what, action, future = item
            if not future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self.busy_with, self.busy_since, self._reported_slow = what, time.time(), False
            try:
                future.set_result(action())
                if what == "cycle":
                    self.disk_failure = None
            except BaseException as failure:  # the caller (or the log) learns; the worker lives on
                if what == "cycle":
                    full = storage_failure(failure, self.store_path) if isinstance(failure, Exception) else None
                    self.disk_failure = full
                    if full is not None:  # once a cycle, until space is freed: one line, no traceback
                        log.warning("batchai: the cycle of cluster %s failed: %s", self.key, full.message)
                    else:
                        log.exception("batchai: the cycle of cluster %s failed", self.key)
                future.set_exception(failure)
            finally:
                with self._lock:
                    again, self._cycle_again = self._cycle_again, False
                    self.busy_with, self.busy_since = "", None
                if again:
                    self.request_cycle(self._cycle or (lambda: None))


class ClusterWorkers:
    """The engine's set of cluster workers, made on first use."""

    def __init__(self, store_path: str = "") -> None:
        self.store_path = store_path
        self._workers: dict[str, ClusterWorker] = {}
        self._lock = threading.Lock()
        self._stopped = False

    def _worker(self, key: str) -> ClusterWorker:
        with self._lock:
            if self._stopped:
                raise RuntimeError("the service is stopping")
            worker = self._workers.get(key)
            if worker is None:
                worker = self._workers[key] = ClusterWorker(key, self.store_path)
            return worker

    def request_cycle(self, key: str, cycle: Callable[[], object]) -> None:
        self._worker(key).request_cycle(cycle)

    def disk_failure(self, key: str) -> BatchAIError | None:
        """Why the cluster's cycles fail, when it is a full or read-only disk (the store cannot say it then)."""
        with self._lock:
            worker = self._workers.get(key)
        return worker.disk_failure if worker else None

    def run(self, key: str, what: str, action: Callable[[], T]) -> T:
        """Runs `action` on the cluster's worker and waits for its result (or its exception)."""
        return self._worker(key).submit(what, action).result()

    def start(self, key: str, what: str, action: Callable[[], object]) -> None:
        """Queues `action` on the cluster's worker without waiting (a failure goes to the log)."""

        def report(done: Future[object]) -> None:
            failure = done.exception()
            if failure is not None:
                log.error("batchai: cluster %s: %s failed: %s", key, what, failure)

        self._worker(key).submit(what, action).add_done_callback(report)

    def retire_idle(self, keep: set[str]) -> None:
        """Stops the workers of clusters that are gone and have nothing left to do."""
        with self._lock:
            gone = [key for key, worker in self._workers.items() if key not in keep and worker.idle()]
            for key in gone:
                self._workers.pop(key).stop()

    def report_slow(self) -> None:
        now = time.time()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.report_if_slow(now)

    def stop(self, timeout: float) -> None:
        """Asks every worker to stop after its current piece of work and waits up to `timeout` in all."""
        with self._lock:
            self._stopped = True
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            worker.stop()
        deadline = time.time() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.time()))
