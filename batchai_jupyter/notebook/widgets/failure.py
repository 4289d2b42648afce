"""Which task of a failed job failed first, and the line of its stderr that says why."""

from __future__ import annotations

import re

# Launchers prefix each line of a rank's output ("[rank1]: ValueError: ..." from torch.distributed).
_PREFIX = re.compile(r"^\[(?:rank|default)\d+\]:\s?")


TERMINATED_BY_USER = "JobTerminated"  # the error code of a job its user terminated (POST .../terminate)


def terminated_by_user(info: dict) -> bool:
    """Whether the job's user terminated it (it may still be terminating): its tasks were stopped, they did
    not fail."""
    errors = (info.get("executionInfo") or {}).get("errors") or []
    return any(e.get("code") == TERMINATED_BY_USER for e in errors)


def outcome(info: dict, state: str) -> str:
    """What a job's badge says: a job its user terminated reads "terminated", not "failed"."""
    return "terminated" if state == "failed" and terminated_by_user(info) else state


def failing_task(tasks: list[dict]) -> dict | None:
    """The task that failed first (the others of a gang often fail after it, because it did): earliest
    end, then rank order; None while no task has failed."""
    failed = [t for t in tasks if t["exitCode"] not in (None, 0)]
    if not failed:
        return None
    return min(
        failed,
        key=lambda t: (
            t["endTime"] or "~",
            t["role"] == "prep",
            t["index"] if t["index"] is not None else -1,
            t["name"],
        ),
    )


def exception_line(stderr: str) -> str | None:
    """The exception line of the last Python traceback in `stderr` ("ValueError: bad shape"), else its last
    non-empty line; None for an empty stderr."""
    lines = [_PREFIX.sub("", line).rstrip() for line in stderr.splitlines()]
    lines = [line for line in lines if line.strip()]
    if not lines:
        return None
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if starts:
        # The exception line is the first unindented line after the traceback's frames.
        for line in lines[starts[-1] + 1 :]:
            if not line[0].isspace():
                return line
    return lines[-1]


def task_label(task: dict) -> str:
    if task["role"] == "prep":
        return f"job preparation on {task['node'] or task['name']}"
    return f"{task['role']} {task['index']}" if task["index"] is not None else task["name"]
