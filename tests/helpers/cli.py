"""The real `batchai` console script, run as a subprocess, and what a good or a failed run looks like."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


def batchai_script() -> str:
    """The installed console script (beside this interpreter, else on PATH)."""
    beside = os.path.join(os.path.dirname(sys.executable), "batchai")
    path = beside if os.path.exists(beside) else shutil.which("batchai")
    if path is None:
        pytest.fail("the `batchai` console script is not installed; run `pip install -e .`")
    return path


def cli(service, *args: str, env: dict | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    """`batchai ARGS...` with no terminal on stdin; output captured as text."""
    return subprocess.run(
        [batchai_script(), *args],
        env=env or service.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.args, result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """A CLI failure: exit 1 and exactly one `error: ...` line on stderr, no traceback."""
    assert result.returncode == 1, (result.args, result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
