"""Which task failed first and which line of its stderr the JobMonitor's headline quotes."""

from __future__ import annotations

from batchai_jupyter.notebook.widgets.failure import exception_line, failing_task

TORCH_STDERR = """\
[rank1]: Traceback (most recent call last):
[rank1]:   File "<cell>", line 4, in <module>
[rank1]:     dist.all_reduce(t)
[rank1]: RuntimeError: Connection closed by peer
[rank1]: during handling, more text
"""


def test_exception_line_is_the_line_under_the_last_traceback():
    assert exception_line(TORCH_STDERR) == "RuntimeError: Connection closed by peer"
    stderr = (
        "Traceback (most recent call last):\n  File \"<cell>\", line 2\nKeyError: 'A'\n\nwarning: later\n"
        'Traceback (most recent call last):\n  File "<cell>", line 9, in <module>\n    f()\n'
        "ValueError: the second\n"
    )
    assert exception_line(stderr) == "ValueError: the second"


def test_without_a_traceback_the_last_line_says_why():
    assert exception_line("copying data\nrsync: connection refused\n\n") == "rsync: connection refused"
    assert exception_line("\n \n") is None


def _task(name, exit_code, end, role="rank", index=None):
    return {"name": name, "exitCode": exit_code, "endTime": end, "role": role, "index": index}


def test_the_failing_task_is_the_one_that_failed_first():
    tasks = [
        _task("0", 137, "2026-01-01T00:00:05Z", index=0),
        _task("1", 1, "2026-01-01T00:00:03Z", index=1),
        _task("2", None, None, index=2),
    ]
    assert failing_task(tasks)["name"] == "1"
    assert failing_task([_task("0", 0, "2026-01-01T00:00:05Z", index=0)]) is None
