"""Run trackers: where jobs' runs are recorded besides the service's own store (ports/tracking.py).

`tensorboard_events`: event files from log_metric, when TensorBoard is installed. `mlflow_runs`: MLflow
runs, when a tracking URI is configured (and MLflow is installed). Both are optional dependencies
(`pip install batchai-jupyter[tracking]`); without them the service runs as before and says what is off.
"""

from __future__ import annotations

import importlib.util
import logging

from ..ports.tracking import RunTracker

log = logging.getLogger("batchai")


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def load_trackers(mlflow_tracking_uri: str) -> list[RunTracker]:
    trackers: list[RunTracker] = []
    if installed("tensorboard"):
        from .tensorboard_events import TensorBoardEvents

        trackers.append(TensorBoardEvents())
    else:
        log.info("batchai: TensorBoard is not installed, so log_metric writes no event files (pip install tensorboard)")
    if installed("mlflow"):  # also without a URI of the service's: an experiment may name its own
        from .mlflow_runs import MlflowRuns

        trackers.append(MlflowRuns(mlflow_tracking_uri))
        if mlflow_tracking_uri:
            log.info("batchai: recording jobs as MLflow runs at %s", mlflow_tracking_uri)
    elif mlflow_tracking_uri:
        log.warning(
            "batchai: mlflow_tracking_uri is set but MLflow is not installed; jobs are not recorded there "
            "(pip install mlflow-skinny)"
        )
    return trackers
