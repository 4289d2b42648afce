"""Core records built for unit tests, with every field a queued job has unless a test says otherwise."""

from __future__ import annotations

from typing import Any

from batchai_jupyter.core.models import JobSpec
from batchai_jupyter.core.records import Job


def queued_job(spec: JobSpec, secrets: dict[str, str] | None = None, **fields: Any) -> Job:
    values: dict[str, Any] = dict(
        id=1, workspace="default", experiment="default", name="j1", uuid="u1", cluster="c1", priority=0,
        state="queued", phase="", spec=spec, secrets=dict(secrets or {}), attempt=1, created=0.0, state_since=0.0,
        started=None, ended=None, exit_code=None, errors=[], node_ids=[], master_port=None, retries_used=0,
        segment="default/j1/u1", placements={}, interruptions=0,
    )  # fmt: skip
    values.update(fields)
    return Job(**values)
