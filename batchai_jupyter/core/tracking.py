"""The RunFollower: follows every running job's metrics file and tells the run trackers (TensorBoard event
files, MLflow) about the job, the points it logs, and its end.

It runs on a thread of its own, never on the engine's or a cluster worker's: a tracker that is slow (a
tracking server far away) delays the trackers, never a job. Offsets live in memory; a restarted service
replays each running attempt's file from the start, and the points carry their index in it so a tracker
that kept what it wrote skips what it has (ports/tracking.py).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import BatchAIError
from ..ports.datastores import Datastore
from ..ports.tracking import MetricPoint, RunTracker, TrackedRun
from ..runtime.metrics import METRICS_FILE
from . import placement
from .events import EventBus
from .records import Job
from .store import Store

log = logging.getLogger("batchai")

FOLLOWED_STATES = ("running", "terminating")
COALESCE_SECONDS = 0.05  # after a wake-up, for the events that follow it
MAX_READ_BYTES = 4 * 1024 * 1024  # per job and cycle; the rest comes next cycle
TOOLKIT_ARGUMENTS = {  # spec field -> parameter name (Batch AI's camelCase)
    "command_line": "commandLine",
    "args": "commandLineArgs",
    "master_args": "masterCommandLineArgs",
    "worker_args": "workerCommandLineArgs",
    "ps_args": "parameterServerCommandLineArgs",
    "python_script": "pythonScriptFilePath",
}


MAX_URI_LENGTH = 2000


def experiment_tracking(document: Mapping[str, Any]) -> dict[str, str]:
    """An experiment's tracking settings from a request: {"mlflowTrackingUri": "scheme:..."} ("" or absent:
    the service's own). Credentials never go in the URI (it is shown by the API): MLflow takes them from
    MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN where the service runs."""
    unknown = sorted(set(document) - {"mlflowTrackingUri"})
    if unknown:
        raise BatchAIError(
            "InvalidArgument", f"{unknown[0]}: not an experiment setting; an experiment takes mlflowTrackingUri"
        )
    uri = document.get("mlflowTrackingUri") or ""
    if not isinstance(uri, str) or len(uri) > MAX_URI_LENGTH:
        raise BatchAIError(
            "InvalidArgument", f'mlflowTrackingUri: give a URI of at most {MAX_URI_LENGTH} characters, or ""'
        )
    if uri:
        parsed = urlsplit(uri)
        if not parsed.scheme or parsed.scheme.isdigit():
            raise BatchAIError(
                "InvalidArgument",
                f"mlflowTrackingUri: {uri[:200]!r} is not a URI; give e.g. http://mlflow:5000 or sqlite:///path/mlflow.db",
            )
        if parsed.password is not None or parsed.username is not None:
            raise BatchAIError(
                "InvalidArgument",
                "mlflowTrackingUri: carries credentials, which the API would show; remove them from the URI and "
                "set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) where the "
                "service runs",
            )
    return {"mlflowTrackingUri": uri} if uri else {}


def run_params(job: Job) -> dict[str, str]:
    """A job's parameters as trackers record them: its environment variables (secrets are not in the spec),
    the toolkit's command line and arguments, and its node and process counts."""
    spec = job.spec
    params = {name: value for name, value in spec.environment.items()}
    for attribute, name in TOOLKIT_ARGUMENTS.items():
        value = getattr(spec.toolkit, attribute)
        if value:
            params[name] = value
    params["nodeCount"] = str(spec.node_count)
    if spec.toolkit.process_count is not None:
        params["processCount"] = str(spec.toolkit.process_count)
    return params


@dataclass
class _Followed:
    attempt: int
    offset: int = 0  # bytes of the attempt's metrics file read
    index: int = 0  # points of the attempt read
    more: bool = False  # the last read stopped at MAX_READ_BYTES, not at the end of the file
    run: TrackedRun | None = None  # as the trackers last heard of it


class RunFollower:
    def __init__(
        self,
        store: Store,
        events: EventBus,
        datastore_for: Callable[[str, str], Datastore],  # (workspace, datastore name)
        trackers: Sequence[RunTracker],
        interval: float = 1.0,
    ):
        self.store = store
        self.events = events
        self.datastore_for = datastore_for
        self.trackers = list(trackers)
        self.interval = interval
        self._followed: dict[int, _Followed] = {}
        self._seen: set[tuple[str, str, str]] = set()  # jobs an event named since the last cycle
        self._failed: set[int] = set()  # jobs whose following failed, logged once
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        if not self.trackers:
            return
        self._unsubscribe = self.events.subscribe(self._on_event)
        self._thread = threading.Thread(target=self._run, name="batchai-run-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops following (a last cycle first), then closes every tracker."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10.0)
        for tracker in self.trackers:
            try:
                tracker.close()
            except Exception:  # noqa: BLE001 - one tracker's failure must not keep the service from stopping
                log.exception("batchai: closing run tracker %s failed", tracker.name)

    def recheck(self, jobs: Sequence[Job]) -> None:
        """Has the next cycle bring these jobs' runs up to date, ended ones too (a tracker that came late)."""
        if not self.trackers:
            return
        with self._lock:
            self._seen.update((job.workspace, job.experiment, job.name) for job in jobs)
        self._wake.set()

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "job" and event.get("state"):
            with self._lock:
                self._seen.add((str(event["workspace"]), str(event["experiment"]), str(event["name"])))
            self._wake.set()

    def _run(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            try:
                self.cycle()
            except Exception:  # noqa: BLE001 - the follower must outlive a bad cycle (a store being closed)
                log.exception("batchai: following job metrics failed; trying again")
            if stopping:
                return
            if self._wake.wait(self.interval):
                # Every job event wakes it: a burst of them (jobs starting and ending dozens a second)
                # makes one cycle instead of one each.
                self._stopping.wait(COALESCE_SECONDS)
            self._wake.clear()

    def cycle(self) -> None:
        """Reads what every followed job logged since the last cycle and tells the trackers."""
        with self._lock:
            seen, self._seen = self._seen, set()
        jobs = {job.id: job for job in self.store.jobs_in_state(*FOLLOWED_STATES)}
        for workspace, experiment, name in seen:
            job = self.store.job_by_name(workspace, experiment, name)
            if job is not None and (job.id in self._followed or job.state in ("succeeded", "failed")):
                jobs[job.id] = job
        for job_id in list(self._followed):
            if job_id not in jobs:
                current = self.store.job(job_id)
                if current is not None:
                    jobs[job_id] = current
                    continue
                last = self._followed.pop(job_id).run  # deleted while it ran: its run ends as it was
                for tracker in self.trackers:
                    if last is not None:
                        self._tell(tracker, tracker.run_ended, last)
        for job in jobs.values():
            try:
                self._follow(job)
            except Exception:  # noqa: BLE001 - one job's trouble (its workspace going) must not stop the others
                if job.id not in self._failed:
                    self._failed.add(job.id)
                    log.exception("batchai: following job %s/%s failed", job.experiment, job.name)

    def _follow(self, job: Job) -> None:
        followed = self._followed.get(job.id)
        if followed is None or followed.attempt != job.attempt:
            followed = self._followed[job.id] = _Followed(job.attempt)
        if job.state == "queued":  # a retry: the attempt's file is archived; the next one is followed as it runs
            del self._followed[job.id]
            return
        run = followed.run = self.tracked_run(job)
        while True:
            points = self._read(run, followed)
            for tracker in self.trackers:
                self._tell(tracker, tracker.run_updated, run, points)
            if not (run.ended_state and followed.more):  # an ended job's file is read to its end now
                break
        if run.ended_state:
            for tracker in self.trackers:
                self._tell(tracker, tracker.run_ended, run)
            del self._followed[job.id]

    @staticmethod
    def _tell(tracker: RunTracker, call: Callable[..., None], *args: Any) -> None:
        try:
            call(*args)
        except Exception:  # noqa: BLE001 - a tracker's bug must not stop the others or the follower
            log.exception("batchai: run tracker %s failed", tracker.name)

    def tracked_run(self, job: Job) -> TrackedRun:
        def node_path(output_id: str) -> str:
            datastore, path = placement.placement_of(job, output_id)
            return self.datastore_for(job.workspace, datastore).node_path(path)

        experiment = self.store.query_one(
            "SELECT tracking FROM experiments WHERE workspace = ? AND name = ?", job.workspace, job.experiment
        )
        return TrackedRun(
            workspace=job.workspace,
            experiment=job.experiment,
            job=job.name,
            uuid=job.uuid,
            cluster=job.cluster,
            toolkit=job.spec.toolkit.kind,
            state=job.state,
            attempt=job.attempt,
            created=job.created,
            started=job.started,
            ended=job.ended,
            exit_code=job.exit_code,
            params=run_params(job),
            stdouterr_dir=node_path(placement.STDOUTERR),
            output_dirs={directory.id: node_path(directory.id) for directory in job.spec.output_directories},
            mlflow_tracking_uri=str((experiment or {}).get("tracking", {}).get("mlflowTrackingUri", "")),
        )

    def _read(self, run: TrackedRun, followed: _Followed) -> list[MetricPoint]:
        try:
            with open(os.path.join(run.stdouterr_dir, METRICS_FILE), "rb") as handle:
                handle.seek(followed.offset)
                data = handle.read(MAX_READ_BYTES)
        except OSError:
            return []  # nothing logged yet
        whole = data[: data.rfind(b"\n") + 1]  # a line still being written is read next time
        followed.offset += len(whole)
        followed.more = len(data) == MAX_READ_BYTES and bool(whole)
        points = []
        for line in whole.splitlines():
            point = _point(line, followed.index)
            if point is not None:
                points.append(point)
                followed.index += 1
        return points


def _point(line: bytes, index: int) -> MetricPoint | None:
    try:
        record = json.loads(line)
        value = record.get("value")
        number = float(value) if value is not None else None
        rank = record.get("rank")
        return MetricPoint(
            index=index,
            name=str(record["name"]),
            value=number if number is not None and math.isfinite(number) else None,
            step=int(record["step"]),
            rank=int(rank) if rank is not None else None,
            time=float(record["time"]),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None  # not a line log_metric wrote
