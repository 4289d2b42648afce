"""`log_metric(name, value, step)`: a job's metrics, for the JobMonitor's live plot.

Each call appends one JSON line {"name", "value", "step", "rank", "time"} to `metrics.jsonl` in the
job's stdouterr directory, which the monitor tails like a log. Outside a job it does nothing.
"""

from __future__ import annotations

import json
import math
import os
import time

from .cellrunner import task_rank

METRICS_FILE = "metrics.jsonl"


def log_metric(name: str, value: float, step: int | None = None) -> dict | None:
    """Records `value` of metric `name` at `step` (default: a count per name). Returns the record."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"log_metric: name {name!r} must be a non-empty string")
    number = float(value)
    directory = os.environ.get("AZ_BATCHAI_STDOUTERR_DIR")
    if not directory:
        return None
    if step is None:
        _steps[name] = step = _steps.get(name, -1) + 1
    record = {
        "name": name,
        "value": number if math.isfinite(number) else None,
        "step": int(step),
        "rank": task_rank(),
        "time": time.time(),
    }
    line = (json.dumps(record) + "\n").encode()
    descriptor = os.open(os.path.join(directory, METRICS_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)  # one write of an O_APPEND file: lines of concurrent ranks never interleave
    finally:
        os.close(descriptor)
    return record


_steps: dict[str, int] = {}
