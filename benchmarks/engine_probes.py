"""Runs `batchai serve` with timing probes around the engine's and the job runner's steps (used by
engine_timeline.py as the service's wrapper): engine_probes.py -- PYTHON -m batchai_jupyter.cli serve ARGS.

Each probe records (what, thread, start, end, [argument,] thread CPU ms) and all are written to
$BATCHAI_PROBES_OUT (JSON lines) when the service stops. Measuring, not testing: never imported by the
project, and it patches the service's classes only in this process."""

from __future__ import annotations

import functools
import json
import os
import runpy
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

OUT = os.environ["BATCHAI_PROBES_OUT"]
records: list[tuple[Any, ...]] = []


def probe(cls: type, name: str, argument: Callable[..., str] | None = None) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start, cpu = time.time(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            used = round((time.thread_time() - cpu) * 1000, 3)
            what = argument(*args, **kwargs) if argument else None
            records.append((f"{cls.__name__}.{name}", threading.current_thread().name, start, time.time(), what, used))

    setattr(cls, name, timed)


def write() -> None:
    with open(OUT, "w") as handle:
        for record in list(records):
            handle.write(json.dumps(record) + "\n")


def main() -> None:
    from batchai_jupyter.backends import local, local_launcher
    from batchai_jupyter.core import engine, jobrun, service

    for name in ("dispatch", "cluster_cycle", "_schedule"):
        probe(engine.Engine, name)
    probe(jobrun.JobRunner, "start", lambda self, job, node_ids: job.name)
    probe(jobrun.JobRunner, "end", lambda self, job, *rest, **named: job.name)
    for name in ("advance", "poll", "context", "_launch_phase", "_prepare_directories"):
        probe(jobrun.JobRunner, name)
    probe(service.Service, "create_job")
    probe(local.LocalBackend, "start_task")

    follow = local_launcher.Launcher._follow

    def followed(self: Any, process: Any) -> None:  # when the launcher reports a task's end
        on_exit = self._on_exit

        def reported() -> None:
            records.append(("task_end_reported", threading.current_thread().name, time.time(), time.time(), None, 0))
            on_exit()

        self._on_exit = reported
        follow(self, process)

    local_launcher.Launcher._follow = followed  # type: ignore[method-assign]
    signal.signal(signal.SIGTERM, lambda *_: (write(), os._exit(0)))
    argv = sys.argv[sys.argv.index("--") + 1 :]
    sys.argv = [argv[2], *argv[3:]]  # PYTHON -m MODULE ARGS
    try:
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
    finally:
        write()


if __name__ == "__main__":
    main()
