"""Each job as an MLflow run of the MLflow experiment of the same name, at the experiment's own tracking URI
or else the service's: its parameters, its metrics as they
are logged, tags (cluster, toolkit, state), and its output directories as artifacts when it ends.

Everything MLflow is done on this tracker's own thread from a bounded queue, so neither the RunFollower nor
the engine ever waits for a tracking server; when the queue is full (MLflow far behind or down) updates are
dropped and that is logged once. A failing MLflow call is logged once per outage and never fails a job.

A job is found again by its tag `batchai.jobUuid` (a restarted service continues its run), and the tag
`batchai.metricPoints` says how many points of the attempt `batchai.attempt` the run has, so a replayed
attempt adds only the rest. Sweeps: a run whose `TrackedRun.parent` is set (the sweeps code sets it for
its trials) becomes a child of the parent run named so, made on first use (`mlflow.parentRunId`).
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import threading
from collections.abc import Sequence
from typing import Any

from ..ports.tracking import MetricPoint, RunTracker, TrackedRun

log = logging.getLogger("batchai")
QUEUE_SIZE = 10_000
BATCH_SIZE = 1000  # MLflow's log_batch takes at most 1000 metrics
MAX_PARAM_LENGTH = 6000
TAG_UUID = "batchai.jobUuid"
TAG_POINTS = "batchai.metricPoints"
TAG_ATTEMPT = "batchai.attempt"
TAG_SWEEP = "batchai.sweep"
STATUS = {"succeeded": "FINISHED", "failed": "FAILED"}
_STOP = object()


class MlflowRuns(RunTracker):
    name = "mlflow"

    def __init__(self, tracking_uri: str, queue_size: int = QUEUE_SIZE):
        self.tracking_uri = tracking_uri  # the service's; "": only experiments that name their own
        self._queue: queue.Queue = queue.Queue(queue_size)
        self._clients: dict[str, Any] = {}  # tracking URI -> MlflowClient
        self._runs: dict[str, tuple[str, int, int]] = {}  # job uuid -> (run id, attempt, points logged)
        self._ended: set[str] = set()  # MLflow runs found already ended (a job's run brought up to date again)
        self._experiments: dict[tuple[str, str], str] = {}  # (tracking URI, name) -> MLflow experiment id
        self._states: dict[str, str] = {}  # job uuid -> state last queued (the RunFollower's thread only)
        self._warned_full = False
        self._failing = False
        self._thread = threading.Thread(target=self._work, name="batchai-mlflow", daemon=True)
        self._thread.start()

    # -- from the RunFollower's thread: never waits ------------------------------------------------

    def run_updated(self, run: TrackedRun, points: Sequence[MetricPoint]) -> None:
        if not self.uri_of(run):
            return
        if points or self._states.get(run.uuid) != run.state:  # the follower asks every second; MLflow hears news
            self._states[run.uuid] = run.state
            self._put(("update", run, list(points)))

    def run_ended(self, run: TrackedRun) -> None:
        self._states.pop(run.uuid, None)
        if self.uri_of(run):
            self._put(("end", run, []))

    def uri_of(self, run: TrackedRun) -> str:
        return run.mlflow_tracking_uri or self.tracking_uri

    def _put(self, item: tuple) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            if not self._warned_full:
                self._warned_full = True
                log.warning(
                    "batchai: MLflow at %s is falling behind (%d updates waiting); later job updates are not "
                    "recorded there until it catches up. Jobs are not affected.",
                    self.uri_of(item[1]),
                    self._queue.maxsize,
                )

    def close(self) -> None:
        try:
            self._queue.put(_STOP, timeout=2.0)
        except queue.Full:
            pass
        self._thread.join(5.0)

    # -- the tracker's own thread -----------------------------------------------------------------

    def _work(self) -> None:
        if self.tracking_uri:  # MLflow's import and its store's first opening take seconds: not at the first job
            try:
                self.client_at(self.tracking_uri).search_experiments(max_results=1)
            except Exception:  # noqa: BLE001 - said when a job's run is recorded there
                pass
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            kind, run, points = item
            try:
                if kind == "update":
                    self._update(run, points)
                else:
                    self._end(run)
                if self._failing:
                    self._failing = False
                    log.warning("batchai: MLflow at %s answers again", self.uri_of(run))
            except Exception as failure:  # noqa: BLE001 - MLflow being down must never touch the jobs
                if not self._failing:
                    self._failing = True
                    log.warning(
                        "batchai: recording job %s/%s in MLflow at %s failed (%s); jobs go on, and what they log "
                        "while it fails is not recorded there",
                        run.experiment,
                        run.job,
                        self.uri_of(run),
                        failure,
                    )
            if self._queue.empty():
                self._warned_full = False

    def client(self, run: TrackedRun) -> Any:
        return self.client_at(self.uri_of(run))

    def client_at(self, uri: str) -> Any:
        if uri not in self._clients:
            from mlflow import MlflowClient  # slow to import: on this thread, once

            self._clients[uri] = MlflowClient(tracking_uri=uri)
        return self._clients[uri]

    def _experiment_id(self, run: TrackedRun) -> str:
        key = (self.uri_of(run), run.experiment)
        if key not in self._experiments:
            client = self.client(run)
            found = client.get_experiment_by_name(run.experiment)
            self._experiments[key] = found.experiment_id if found else client.create_experiment(run.experiment)
        return self._experiments[key]

    def _run_of(self, run: TrackedRun) -> tuple[str, int, int]:
        if run.uuid in self._runs:
            return self._runs[run.uuid]
        experiment_id = self._experiment_id(run)
        found = self.client(run).search_runs([experiment_id], f"tags.`{TAG_UUID}` = '{run.uuid}'", max_results=1)
        if found:
            tags = found[0].data.tags
            record = (found[0].info.run_id, int(tags.get(TAG_ATTEMPT, 0)), int(tags.get(TAG_POINTS, 0)))
            if found[0].info.status in STATUS.values() and tags.get("batchai.state") == run.state:
                self._ended.add(run.uuid)
        else:
            record = (self._create(run, experiment_id), run.attempt, 0)
        self._runs[run.uuid] = record
        return record

    def _create(self, run: TrackedRun, experiment_id: str) -> str:
        from mlflow.entities import Param

        tags = {TAG_UUID: run.uuid, "batchai.workspace": run.workspace, "batchai.job": run.job}
        client = self.client(run)
        if run.parent:
            tags["mlflow.parentRunId"] = self._parent_run(run, experiment_id)
        created = client.create_run(
            experiment_id, start_time=_ms(run.started or run.created), tags=tags, run_name=run.job
        )
        params = [Param(_key(name), str(value)[:MAX_PARAM_LENGTH]) for name, value in sorted(run.params.items())]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            client.log_batch(created.info.run_id, params=params[start : start + 100])
        return str(created.info.run_id)

    def _parent_run(self, run: TrackedRun, experiment_id: str) -> str:
        client = self.client(run)
        found = client.search_runs([experiment_id], f"tags.`{TAG_SWEEP}` = '{run.parent}'", max_results=1)
        if found:
            return str(found[0].info.run_id)
        parent = client.create_run(experiment_id, tags={TAG_SWEEP: run.parent}, run_name=run.parent)
        return str(parent.info.run_id)

    def _update(self, run: TrackedRun, points: Sequence[MetricPoint]) -> None:
        from mlflow.entities import Metric, RunTag

        run_id, attempt, logged = self._run_of(run)
        if attempt != run.attempt:
            attempt, logged = run.attempt, 0
        fresh = [point for point in points if point.index >= logged]
        metrics = [
            Metric(
                _metric_key(point),
                point.value if point.value is not None else math.nan,
                _ms(point.time),
                point.step,
            )
            for point in fresh
        ]
        if fresh:
            logged = fresh[-1].index + 1
        tags = [
            RunTag("batchai.cluster", run.cluster),
            RunTag("batchai.toolkit", run.toolkit),
            RunTag("batchai.state", run.state),
            RunTag(TAG_ATTEMPT, str(attempt)),
            RunTag(TAG_POINTS, str(logged)),
        ]
        for start in range(0, max(len(metrics), 1), BATCH_SIZE):
            last = start + BATCH_SIZE >= len(metrics)
            # the count goes with the batch that completes it: a failure in between logs those points again
            self.client(run).log_batch(run_id, metrics=metrics[start : start + BATCH_SIZE], tags=tags if last else ())
        self._runs[run.uuid] = (run_id, attempt, logged)

    def _end(self, run: TrackedRun) -> None:
        self._update(run, [])
        run_id = self._runs[run.uuid][0]
        if run.uuid in self._ended:  # recorded whole before: its artifacts are not uploaded again
            self._ended.discard(run.uuid)
            del self._runs[run.uuid]
            return
        for output_id, directory in sorted(run.output_dirs.items()):
            if os.path.isdir(directory) and any(files for _root, _dirs, files in os.walk(directory)):
                self.client(run).log_artifacts(run_id, directory, artifact_path=output_id)
        self.client(run).set_terminated(run_id, STATUS.get(run.state, "KILLED"), _ms(run.ended) if run.ended else None)
        del self._runs[run.uuid]


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _key(name: str) -> str:
    """A name MLflow takes as a key (letters, digits, `_-. /`)."""
    return re.sub(r"[^\w\-. /]", "_", name)[:250] or "_"


def _metric_key(point: MetricPoint) -> str:
    return _key(point.name if not point.rank else f"{point.name}/rank-{point.rank}")
