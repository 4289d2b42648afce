"""The failure summary the service gives a failed job: which task failed first, and which line of its
stderr the headline quotes (core/failure_summary.py)."""

from __future__ import annotations

from batchai_jupyter.core.failure_summary import exception_line, failing_task, failure_summary

TORCH_STDERR = """\
[rank1]: Traceback (most recent call last):
[rank1]:   File "<cell>", line 4, in <module>
[rank1]:     dist.all_reduce(t)
[rank1]: RuntimeError: Connection closed by peer
[rank1]: during handling, more text
"""

# A traceback through a launcher's frames, then the launcher's own words: the quoted line is the exception.
WRAPPED_STDERR = """\
loading data
Traceback (most recent call last):
  File "/usr/lib/python3/runpy.py", line 196, in _run_module_as_main
    return _run_code(code, main_globals, None,
  File "/opt/batchai/runtime/wrapper.py", line 88, in main
    exec(code, scope)
  File "train.py", line 12, in <module>
    raise ValueError('bad shape on rank 1')
ValueError: bad shape on rank 1
batchai: the task exited with code 1
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


def _task(name, exit_code, end, role="rank", index=None, attempt=1):
    return {
        "name": name,
        "exitCode": exit_code,
        "endTime": end,
        "role": role,
        "index": index,
        "attempt": attempt,
        "node": f"node-{name}",
        "stderr": f"stderr-{name}.txt",
    }


def test_the_failing_task_is_the_one_that_failed_first():
    tasks = [
        _task("0", 137, "2026-01-01T00:00:05Z", index=0),
        _task("1", 1, "2026-01-01T00:00:03Z", index=1),
        _task("2", None, None, index=2),
    ]
    assert failing_task(tasks)["name"] == "1"
    assert failing_task([_task("0", 0, "2026-01-01T00:00:05Z", index=0)]) is None


def test_the_summary_names_the_task_its_log_and_quotes_the_exception_not_a_wrapper_frame():
    tasks = [
        _task("0", 143, "2026-01-01T00:00:06Z", index=0),  # stopped because rank 1 failed
        _task("1", 1, "2026-01-01T00:00:04Z", index=1),
        _task("1", 2, "2026-01-01T00:00:01Z", index=1, attempt=0),  # an earlier attempt's failure
    ]
    read = []
    logs = {"stderr-1.txt": WRAPPED_STDERR, "stderr-0.txt": "Terminated\n"}

    def read_tail(path):
        read.append(path)
        return logs[path]

    summary = failure_summary(tasks, read_tail, attempt=1)
    assert read == ["stderr-1.txt"]  # only the failing task's stderr is read
    assert summary == {
        "task": "1",
        "label": "rank 1",
        "node": "node-1",
        "exitCode": 1,
        "log": "stderr-1.txt",
        "line": "ValueError: bad shape on rank 1",
        "headline": "rank 1 failed (exit code 1): ValueError: bad shape on rank 1",
    }


def test_an_empty_stderr_gives_a_headline_without_a_line_and_no_failure_gives_none():
    summary = failure_summary([_task("0", 3, "T", role="master", index=0)], lambda path: "")
    assert (summary["line"], summary["headline"]) == (None, "master 0 failed (exit code 3)")
    assert failure_summary([_task("0", 0, "T", index=0)], lambda path: "unread") is None
