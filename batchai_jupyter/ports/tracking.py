"""What the service tells run trackers (TensorBoard event files, MLflow runs) about jobs.

The core's RunFollower (core/tracking.py) follows every running job's metrics file and hands each
tracker the job as a `TrackedRun`, its metric points as they are logged, and its end. Trackers live
in batchai_jupyter/tracking and are put together by the composition root, like the backends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TENSORBOARD_DIR = "tensorboard"  # inside a job's stdouterr: the event files written from its log_metric calls


@dataclass(frozen=True)
class TrackedRun:
    """One job as a run: who it is, what it was asked to do, and where the service sees its files."""

    workspace: str
    experiment: str
    job: str
    uuid: str
    cluster: str
    toolkit: str
    state: str
    attempt: int
    created: float
    started: float | None
    ended: float | None
    exit_code: int | None
    params: Mapping[str, str]  # from the spec: environment variables, arguments, node count
    stdouterr_dir: str  # the job's logs as the service's host sees them
    output_dirs: Mapping[str, str] = field(default_factory=dict)  # output directory id -> path on the service's host
    # The sweep this job is a trial of: MLflow records it as a child of the sweep's parent run. The sweeps code
    # sets it (RunFollower.tracked_run); None for a plain job.
    parent: str | None = None
    mlflow_tracking_uri: str = ""  # the experiment's own MLflow; "": the service's

    @property
    def ended_state(self) -> bool:
        return self.state in ("succeeded", "failed")


@dataclass(frozen=True)
class MetricPoint:
    """One `log_metric` call. `index` counts the points of the job's attempt from 0, so a tracker that
    already has the first n (a restarted service replays an attempt's file) skips them."""

    index: int
    name: str
    value: float | None  # None: the job logged NaN or an infinity
    step: int
    rank: int | None
    time: float


class RunTracker(ABC):
    """Receives runs from the RunFollower's thread, one call at a time. A tracker must not raise for what
    its own tool does (a tracking server that is down): it logs and goes on, so jobs never fail for it."""

    name: str = "tracker"

    @abstractmethod
    def run_updated(self, run: TrackedRun, points: Sequence[MetricPoint]) -> None:
        """The run as it is now (first call: the run began or the service started following it), with the
        points logged since the last call (possibly none)."""

    @abstractmethod
    def run_ended(self, run: TrackedRun) -> None:
        """The run's attempt ended in `run.state`; no more points come for it."""

    @abstractmethod
    def close(self) -> None:
        """The service stops; pending work is finished or dropped within a few seconds."""
