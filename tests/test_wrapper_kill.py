"""A kill that reaches a task before its wrapper has written a pid (a terminate right after a start)
is not lost: the task ends with the signal before its command runs, instead of running on until the
service's grace period forces it. Runs the real wrapper on a real task directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from batchai_jupyter.runtime import wrapper


def _task_dir(tmp_path, command: str) -> str:
    task_dir = tmp_path / "run"
    task_dir.mkdir()
    task = {
        "command": command,
        "env": {"PATH": os.environ["PATH"]},
        "cwd": str(tmp_path),
        "stdout": str(tmp_path / "stdout.txt"),
        "stderr": str(tmp_path / "stderr.txt"),
        "heartbeat_seconds": 1,
    }
    (task_dir / "task.json").write_text(json.dumps(task))
    return str(task_dir)


def _exit_code(task_dir: str) -> int:
    with open(os.path.join(task_dir, "exit")) as handle:
        return json.load(handle)["exit_code"]


def test_a_kill_before_the_task_started_ends_it_before_its_command_runs(tmp_path):
    ran = tmp_path / "ran"
    task_dir = _task_dir(tmp_path, f"touch {ran}; sleep 600")
    wrapper.kill_task_processes(task_dir, signal.SIGTERM)  # no pid yet: nothing to signal, so it is recorded
    subprocess.run([sys.executable, "-S", wrapper.__file__, task_dir], timeout=120, check=True)
    assert _exit_code(task_dir) == 128 + signal.SIGTERM
    assert not ran.exists()


def test_a_task_never_killed_runs_as_usual(tmp_path):
    ran = tmp_path / "ran"
    task_dir = _task_dir(tmp_path, f"touch {ran}")
    subprocess.run([sys.executable, "-S", wrapper.__file__, task_dir], timeout=120, check=True)
    assert _exit_code(task_dir) == 0
    assert ran.exists()
