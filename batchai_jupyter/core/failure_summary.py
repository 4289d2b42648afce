"""A failed job's failure summary: the task that failed first, and the line of its stderr that says why.

The service computes it once for every face (the REST job view carries it as `failure`); the notebook's
JobMonitor and the Lab panel only render it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

TAIL_BYTES = 64 * 1024  # of the failing task's stderr: a traceback's end is near the end of the file

TERMINATED_BY_USER = "JobTerminated"  # the error code of a job its user terminated (POST .../terminate)

# Launchers prefix each line of a rank's output ("[rank1]: ValueError: ..." from torch.distributed).
_PREFIX = re.compile(r"^\[(?:rank|default)\d+\]:\s?")


def terminated_by_user(errors: list[dict[str, Any]] | None) -> bool:
    """Whether a job with these execution errors was terminated by its user: its tasks were stopped, they
    did not fail."""
    return any(e.get("code") == TERMINATED_BY_USER for e in errors or [])


def failing_task(tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The task (a task view) that failed first (the others of a gang often fail after it, because it did):
    earliest end, then ranks before preparation, then rank order; None while no task has failed."""
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
    """The exception line of the last Python traceback in `stderr` ("ValueError: bad shape"), not one of its
    frames; else its last non-empty line; None for an empty stderr."""
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


def task_label(task: dict[str, Any]) -> str:
    """ "rank 1", "master 0", or "job preparation on node-0"."""
    if task["role"] == "prep":
        return f"job preparation on {task['node'] or task['name']}"
    return f"{task['role']} {task['index']}" if task["index"] is not None else task["name"]


def failure_summary(
    tasks: list[dict[str, Any]], read_tail: Callable[[str], str], attempt: int | None = None
) -> dict[str, Any] | None:
    """{task, label, exitCode, log, line, headline} of the task of `attempt` (None: any) that failed first;
    `read_tail(path)`: the last bytes of a stderr file of the job's stdouterr, "" while it is not there.
    None while no task has failed."""
    failed = failing_task([t for t in tasks if attempt is None or t["attempt"] == attempt])
    if failed is None:
        return None
    line = exception_line(read_tail(failed["stderr"])) if failed["stderr"] else None
    headline = f"{task_label(failed)} failed (exit code {failed['exitCode']})"
    return {
        "task": failed["name"],
        "label": task_label(failed),
        "node": failed["node"],
        "exitCode": failed["exitCode"],
        "log": failed["stderr"],
        "line": line,
        "headline": f"{headline}: {line}" if line else headline,
    }
