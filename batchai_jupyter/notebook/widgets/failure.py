"""What a job's badge says: a job its user terminated reads "terminated", not "failed".

Which task failed and why is the service's failure summary (core/failure_summary.py, the job view's
`failure`); the widgets only render it."""

from __future__ import annotations

TERMINATED_BY_USER = "JobTerminated"  # the error code of a job its user terminated (POST .../terminate)


def terminated_by_user(info: dict) -> bool:
    """Whether the job's user terminated it (it may still be terminating): its tasks were stopped, they did
    not fail."""
    errors = (info.get("executionInfo") or {}).get("errors") or []
    return any(e.get("code") == TERMINATED_BY_USER for e in errors)


def outcome(info: dict, state: str) -> str:
    """What a job's badge says: a job its user terminated reads "terminated", not "failed"."""
    return "terminated" if state == "failed" and terminated_by_user(info) else state
