"""Load of the local backend's nodes. They share this machine, so a node's own use is that of its
tasks' process trees (the wrapper's pid in each running task's directory, and its descendants),
reported beside the machine's totals. Sampled when asked, at most every LOAD_SECONDS; CPU is the
average since the previous sample."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import threading
import time

import psutil

from ..ports.compute import GpuUsage, LoadSample, Usage
from .load_readings import GPU_QUERY, gpu_usage

LOAD_SECONDS = 2.0


def _task_pids(root: str) -> list[int]:
    """Wrappers of the node's tasks still running: a pid file and no exit file yet."""
    pids = []
    for pid_file in glob.glob(os.path.join(root, "run", "*", "pid")):
        if os.path.exists(os.path.join(os.path.dirname(pid_file), "exit")):
            continue
        try:
            with open(pid_file) as handle:
                pids.append(int(handle.read().strip()))
        except (OSError, ValueError):
            continue
    return pids


class LocalLoad:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: dict[int, psutil.Process] = {}  # kept between samples: cpu_percent is since the last call
        self._samples: dict[str, LoadSample] = {}  # node root -> latest sample
        self._machine: tuple[float, Usage, tuple[GpuUsage, ...] | None] | None = None
        self._cores = psutil.cpu_count() or 1

    def sample(self, root: str) -> LoadSample:
        with self._lock:
            latest = self._samples.get(root)
            if latest is not None and time.time() - latest.sampled < LOAD_SECONDS:
                return latest
            machine, gpus = self._machine_usage()
            cpu, memory = 0.0, 0
            for process in self._trees(root):
                try:
                    with process.oneshot():
                        cpu += process.cpu_percent(None)
                        memory += process.memory_info().rss
                except psutil.Error:  # it ended while we looked
                    continue
            usage = Usage(
                # the first sample has no previous one to measure CPU against
                cpu_percent=None if latest is None else round(cpu / self._cores, 1),
                memory_used_bytes=memory,
                memory_total_bytes=machine.memory_total_bytes,
            )
            sample = LoadSample(time.time(), "tasks", usage, machine, gpus)
            self._samples[root] = sample
            return sample

    def forget(self, root: str) -> None:
        with self._lock:
            self._samples.pop(root, None)

    def _trees(self, root: str) -> list[psutil.Process]:
        found = []
        for pid in _task_pids(root):
            try:
                wrapper = self._process(pid)
                found += [wrapper, *(self._process(child.pid) for child in wrapper.children(recursive=True))]
            except psutil.Error:
                continue
        for pid in [pid for pid, process in self._processes.items() if not process.is_running()]:
            del self._processes[pid]
        return found

    def _process(self, pid: int) -> psutil.Process:
        process = self._processes.get(pid)
        if process is None or not process.is_running():  # is_running also sees a reused pid
            process = self._processes[pid] = psutil.Process(pid)
        return process

    def _machine_usage(self) -> tuple[Usage, tuple[GpuUsage, ...] | None]:
        if self._machine is not None and time.time() - self._machine[0] < LOAD_SECONDS:
            return self._machine[1], self._machine[2]
        first = self._machine is None
        cpu = psutil.cpu_percent(None)  # since the previous call
        memory = psutil.virtual_memory()
        usage = Usage(None if first else cpu, memory.total - memory.available, memory.total)
        self._machine = (time.time(), usage, _gpus())
        return usage, self._machine[2]


def _gpus() -> tuple[GpuUsage, ...] | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        done = subprocess.run(GPU_QUERY.split(), capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return gpu_usage(done.stdout.splitlines()) if done.returncode == 0 else None
