"""`params()`: the run's parameters (the native spec's `params`, a sweep trial's sampled values)."""

from __future__ import annotations

import json
import os

PARAMS_VARIABLE = "BATCHAI_PARAMS"


def params() -> dict:
    """The job's parameters as a dict ({} outside a job, or for a job without any)."""
    text = os.environ.get(PARAMS_VARIABLE, "")
    return json.loads(text) if text else {}
