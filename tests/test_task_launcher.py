"""The local backend starts each task's wrapper by forking its launcher (runtime/wrapper.py --launcher).
A wrapper started so is a wrapper like one started on its own: it leads its own session, is found and
killed whole by its task directory, and outlives its launcher, whose death only makes the backend follow
the task by its records (and start a new launcher for the next task). Real processes throughout."""

from __future__ import annotations

import json
import os
import signal
from types import SimpleNamespace

import pytest

from batchai_jupyter.backends.local import LocalBackend, kill_unfinished_tasks
from batchai_jupyter.ports.compute import TaskLaunch
from batchai_jupyter.runtime import wrapper
from helpers.waits import wait_for

NODE = SimpleNamespace(id=1, workspace="w", cluster="c", name="n1", ip="127.0.0.1", info={})


@pytest.fixture(params=["off", "auto"], ids=["unsandboxed", "sandboxed"])
def backend(tmp_path, request):
    options = {"sandbox": request.param}
    backend = LocalBackend(lambda cluster, node: str(tmp_path / "node"), heartbeat_seconds=1.0, options=options)
    yield backend
    backend.close()
    kill_unfinished_tasks(str(tmp_path))


def _start(backend: LocalBackend, tmp_path, name: str, command: str) -> str:
    run_dir = str(tmp_path / "run" / name)
    launch = TaskLaunch(
        command=command,
        env={"PATH": os.environ["PATH"]},
        cwd=str(tmp_path),
        stdout=str(tmp_path / f"{name}.out"),
        stderr=str(tmp_path / f"{name}.err"),
    )
    backend.start_task(NODE, run_dir, launch)
    return run_dir


def _pid(run_dir: str) -> int | None:
    try:
        with open(os.path.join(run_dir, "pid")) as handle:
            return int(handle.read())
    except (FileNotFoundError, ValueError):
        return None


def _status(backend: LocalBackend, run_dir: str):
    return backend.poll_task(NODE, run_dir, launched_at=0.0)


def test_a_launched_wrapper_leads_its_session_and_is_killed_whole_by_its_task_directory(backend, tmp_path):
    run_dir = _start(backend, tmp_path, "sleeper", "sleep 600 & wait")
    pid = wait_for(lambda: _pid(run_dir), "the wrapper's pid")
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid
    assert wrapper._task_leader(run_dir) == pid  # known as the task's wrapper, though not started with its dir
    assert _status(backend, run_dir).state == "running"

    backend.kill_task(NODE, run_dir)
    status = wait_for(
        lambda: _status(backend, run_dir) if _status(backend, run_dir).state == "exited" else None, "exit"
    )
    assert status.exit_code == 128 + signal.SIGTERM
    assert wrapper.marked_processes(run_dir) == []


def test_tasks_outlive_their_launcher_and_the_next_task_gets_a_new_one(backend, tmp_path):
    gate = tmp_path / "gate"
    run_dir = _start(backend, tmp_path, "first", f"while [ ! -e {gate} ]; do sleep 0.05; done; exit 7")
    pid = wait_for(lambda: _pid(run_dir), "the wrapper's pid")
    launcher = backend._launcher._process
    assert launcher is not None and launcher.pid != pid

    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait()
    assert _status(backend, run_dir).state == "running"  # from its pid now, the launcher being gone

    second = _start(backend, tmp_path, "second", "exit 3")
    assert backend._launcher._process is not None and backend._launcher._process.pid != launcher.pid
    wait_for(lambda: _status(backend, second).state == "exited", "the second task's exit")
    assert _status(backend, second).exit_code == 3

    gate.touch()
    wait_for(lambda: _status(backend, run_dir).state == "exited", "the first task's exit")
    assert _status(backend, run_dir).exit_code == 7


def _exit_record(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "exit")) as handle:
        return json.load(handle)


def test_a_launched_wrapper_tells_whether_its_task_left_processes_and_a_kill_still_finds_them(backend, tmp_path):
    clean = _start(backend, tmp_path, "clean", "sleep 0.1 & wait; exit 0")
    leaving = _start(backend, tmp_path, "leaving", "(setsid sleep 600 &); exit 4")
    for run_dir in (clean, leaving):
        wait_for(lambda run_dir=run_dir: _status(backend, run_dir).state == "exited", "the task's exit")
    assert _exit_record(clean)["left"] is False  # its subreaper wrapper saw nothing of it left
    if backend._isolation(NODE) == "bwrap":  # the sleep ended with its sandbox, before the exit record
        assert _exit_record(leaving)["left"] is False and _exit_record(leaving)["exit_code"] == 4
        assert wrapper.marked_processes(leaving) == []
        return
    assert _exit_record(leaving)["left"] is True and _exit_record(leaving)["exit_code"] == 4
    escaped = wrapper.marked_processes(leaving)
    assert escaped and all(os.getsid(pid) == pid for pid in escaped)  # the sleep, in a session of its own

    backend.kill_task(NODE, leaving, force=True)  # what the end of its job does
    wait_for(lambda: not [pid for pid in escaped if _alive(pid)], "the escaped process's end")
    assert wrapper.marked_processes(leaving) == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_task_handed_over_twice_runs_once(backend, tmp_path):
    """A restarted service hands over again a task it cannot tell was taken up: the first wrapper to
    take it runs it, the other ends at once without records."""
    ran = tmp_path / "ran"
    run_dir = _start(backend, tmp_path, "twice", f"echo once >> {ran}")
    backend._launcher.launch(run_dir)
    wait_for(lambda: _status(backend, run_dir).state == "exited", "the task's exit")
    wait_for(lambda: not backend._launcher.running(run_dir), "both wrappers reaped")
    assert ran.read_text() == "once\n"
    assert _status(backend, run_dir).exit_code == 0
    assert backend.task_started(NODE, run_dir)


def test_a_task_json_no_wrapper_took_up_is_not_started(backend, tmp_path):
    run_dir = tmp_path / "run" / "waiting"
    run_dir.mkdir(parents=True)
    (run_dir / "task.json").write_text("{}")
    assert not backend.task_started(NODE, str(run_dir))
