"""The local backend's launcher: one `wrapper.py --launcher` process that forks a task's wrapper for
each task directory written to it (see runtime/wrapper.py serve_launches), so starting a task costs a
fork rather than an interpreter start, and its waiting wrapper shares most of its memory.

The launcher is a convenience, not a keeper of state: every wrapper it forked records pid, heartbeat
and exit code in its task directory and goes on if the launcher or the service dies. Here it only tells
which tasks it started are still running (so a task is "running" before its pid file is there) and
calls `on_exit` as each ends. A launcher that died is started again at the next launch; the tasks it
had started are then followed through their records alone.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable

from ..runtime import wrapper

log = logging.getLogger("batchai")


class Launcher:
    def __init__(self, on_exit: Callable[[], None]):
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._running: dict[str, subprocess.Popen[bytes]] = {}  # task dir: the launcher that started it

    def launch(self, task_dir: str) -> None:
        """Starts the wrapper of the task whose task.json is in `task_dir`."""
        line = task_dir.encode() + b"\n"
        with self._lock:
            for attempt in (1, 2):
                process = self._process if self._process and self._process.poll() is None else self._start()
                self._running[task_dir] = process
                try:
                    assert process.stdin is not None
                    process.stdin.write(line)
                    process.stdin.flush()
                    return
                except (BrokenPipeError, ValueError):  # it died since: once more with a new one
                    self._process = None
                    del self._running[task_dir]
                    if attempt == 2:
                        raise

    def running(self, task_dir: str) -> bool:
        """Started by a launcher that has not reaped it yet."""
        with self._lock:
            return task_dir in self._running

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            wrapper.launch_argv(sys.executable, "--launcher"),
            start_new_session=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        self._process = process
        threading.Thread(target=self._follow, args=(process,), name="batchai-launcher", daemon=True).start()
        return process

    def _follow(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._lock:
                self._running.pop(line.decode().rstrip("\n"), None)
            self._on_exit()
        process.wait()
        with self._lock:  # what it started and still runs is followed through its records from now on
            if self._process is process:
                self._process = None
            left = [task_dir for task_dir, starter in self._running.items() if starter is process]
            for task_dir in left:
                del self._running[task_dir]
        if left and process.returncode != 0:
            log.warning(
                "batchai: the local task launcher ended with %s while %d tasks ran", process.returncode, len(left)
            )
        if left:
            self._on_exit()

    def close(self) -> None:
        """Ends the launcher once it has read what it was sent (the tasks it started go on)."""
        with self._lock:
            process, self._process = self._process, None
        if process and process.stdin:
            try:
                process.stdin.close()
            except OSError:
                pass
