"""TensorBoard event files from what jobs log with `batchai_jupyter.runtime.log_metric`, written on the
service's side with TensorBoard's own summary writer.

Why here and not in the job: the runtime runs on nodes with the standard library alone (an SSH host or a
Slurm node may have no TensorBoard), and a job's metrics file is already followed by the service. So the
file is the one source, any node works, the job pays no import or write cost, and every backend gets the
same event files: `<stdouterr>/tensorboard/` (rank 0, and points logged outside a rank), and
`<stdouterr>/tensorboard/rank-<r>/` for the other ranks, one TensorBoard run each. A small
`.batchai-written.json` there says how many points of which attempt are in; a restarted service skips those.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from typing import Any

from ..ports.tracking import TENSORBOARD_DIR, MetricPoint, RunTracker, TrackedRun

log = logging.getLogger("batchai")
WRITTEN_FILE = ".batchai-written.json"


class TensorBoardEvents(RunTracker):
    name = "tensorboard"

    def __init__(self) -> None:
        from tensorboard.summary import Writer  # the optional dependency; assembly checked it is there

        self._writer_class = Writer
        self._writers: dict[tuple[str, str], Any] = {}  # (job uuid, run directory) -> Writer
        self._written: dict[str, tuple[int, int]] = {}  # job uuid -> (attempt, points written)

    def run_updated(self, run: TrackedRun, points: Sequence[MetricPoint]) -> None:
        root = os.path.join(run.stdouterr_dir, TENSORBOARD_DIR)
        attempt, written = self._written.get(run.uuid) or _read_written(root)
        if attempt != run.attempt:
            attempt, written = run.attempt, 0
        fresh = [point for point in points if point.index >= written]
        if not fresh:
            self._written[run.uuid] = (attempt, written)
            return
        touched = []
        for point in fresh:
            directory = root if not point.rank else os.path.join(root, f"rank-{point.rank}")
            writer = self._writer(run.uuid, directory)
            value = point.value if point.value is not None else math.nan
            writer.add_scalar(point.name, value, point.step, wall_time=point.time)
            if writer not in touched:
                touched.append(writer)
        for writer in touched:
            writer.flush()
        written = fresh[-1].index + 1
        self._written[run.uuid] = (attempt, written)
        _write_written(root, attempt, written)

    def run_ended(self, run: TrackedRun) -> None:
        for key in [key for key in self._writers if key[0] == run.uuid]:
            self._writers.pop(key).close()
        self._written.pop(run.uuid, None)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def _writer(self, job_uuid: str, directory: str):
        key = (job_uuid, directory)
        if key not in self._writers:
            self._writers[key] = self._writer_class(directory)
        return self._writers[key]


def _read_written(root: str) -> tuple[int, int]:
    try:
        with open(os.path.join(root, WRITTEN_FILE)) as handle:
            record = json.load(handle)
        return int(record["attempt"]), int(record["points"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0, 0


def _write_written(root: str, attempt: int, points: int) -> None:
    path = os.path.join(root, WRITTEN_FILE)
    with open(path + ".tmp", "w") as handle:
        json.dump({"attempt": attempt, "points": points}, handle)
    os.replace(path + ".tmp", path)
