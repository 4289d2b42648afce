"""Shared plumbing for the benchmarks: a private `batchai serve`, the event stream, statistics,
and where results go. Benchmarks only use the public REST API (through batchai_jupyter.client)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import queue
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from batchai_jupyter.backends.local import kill_unfinished_tasks
from batchai_jupyter.client import Client
from batchai_jupyter.errors import BatchAIError

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
REPO_ROOT = os.path.dirname(BENCH_DIR)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def iso_to_epoch(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- the service under test ------------------------------------------------------------------


class Service:
    """`batchai serve` on a free port with its own temporary BATCHAI_HOME and token.

    Use as a context manager; on exit the service is stopped, every job wrapper it left is
    killed and the home is removed (unless keep=True). `seed_home`: a home to start from (copied)."""

    def __init__(
        self,
        keep: bool = False,
        extra_env: dict | None = None,
        wrap: list[str] | None = None,
        seed_home: str | None = None,
    ):
        self.base = tempfile.mkdtemp(prefix="batchai-bench-")
        self.home = os.path.join(self.base, "home")
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.keep = keep
        self.seed_home = seed_home
        self.extra_env = extra_env or {}
        # BATCHAI_BENCH_PYSPY=FILE runs the service under `py-spy record` (collapsed stacks in FILE).
        profile = os.environ.get("BATCHAI_BENCH_PYSPY")
        if wrap is None and profile:
            wrap = ["py-spy", "record", "--rate", "250", "--format", "raw", "--threads", "-o", profile, "--"]
        self.wrap = wrap or []
        self.process: subprocess.Popen | None = None
        self.log_path = os.path.join(self.base, "serve.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> Service:
        if self.seed_home:
            shutil.copytree(self.seed_home, self.home)
        else:
            os.makedirs(self.home)
        self._launch()
        return self

    def kill_and_restart(self) -> None:
        """kill -9 of the service, then a new one on the same home and port (what a crash and a restart do)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self._launch()

    def _launch(self) -> None:
        env = {
            **os.environ,
            "BATCHAI_HOME": self.home,
            "JUPYTER_RUNTIME_DIR": os.path.join(self.base, "runtime"),
            **self.extra_env,
        }
        env.pop("BATCHAI_URL", None)
        env["BATCHAI_TOKEN"] = self.token  # not in argv, where `ps` shows it
        # BATCHAI_BENCH_PACKAGE=DIR serves the batchai_jupyter package found in DIR instead of the
        # installed one (e.g. DIR from `git archive <rev> batchai_jupyter | tar -x -C DIR`), to
        # measure a before/after pair with the same benchmark code.
        package = os.environ.get("BATCHAI_BENCH_PACKAGE")
        if package:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.abspath(package), env.get("PYTHONPATH")]))
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*self.wrap, sys.executable, "-m", "batchai_jupyter.cli", "serve", "--port", str(self.port)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            cwd=self.base,
        )
        log.close()
        self.client = Client(self.url, self.token)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"batchai serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                self.client.version()
                return
            except BatchAIError:
                time.sleep(0.02)
        raise RuntimeError(f"batchai serve did not answer within 60 s:\n{self.log()}")

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT if self.wrap else signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        kill_unfinished_tasks(os.path.join(self.home, "nodes"))
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as handle:
            return handle.read()[-5000:]

    def make_cluster(self, name: str, nodes: int, timeout: float = 60.0, **spec: Any) -> None:
        self.client.create_cluster("default", {"backend": "local", "nodeCount": nodes, **spec}, name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = self.client.get(self.client.cluster_path("default", name))["nodeStateCounts"]
            if counts["idleNodeCount"] == nodes:
                return
            time.sleep(0.05)
        raise RuntimeError(f"cluster {name} did not get {nodes} idle nodes within {timeout} s")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by the service process (`service`) and by the processes it started
        with everything they reaped (`children`: the task launcher, its wrappers and their tasks);
        user + system, from /proc, so a loaded machine changes it far less than wall-clock figures."""
        assert self.process is not None
        service = _stat_fields(self.process.pid)
        children = 0.0
        for task in os.listdir(f"/proc/{self.process.pid}/task"):
            with open(f"/proc/{self.process.pid}/task/{task}/children") as handle:
                for child in handle.read().split():
                    fields = _stat_fields(int(child))
                    children += sum(fields[UTIME : UTIME + 4]) if fields else 0  # utime stime cutime cstime
        ticks = os.sysconf("SC_CLK_TCK")
        own = sum(service[UTIME : UTIME + 4])  # its own, and what it waited for itself
        return {"service": own / ticks, "children": children / ticks}

    def job(self, name: str, experiment: str = "default") -> dict:
        return self.client.job("default", experiment, name)


# /proc/PID/stat's fields after the command name start at the 4th (ppid), so utime (the 14th) is index 10.
UTIME = 10


def _stat_fields(pid: int) -> list[int]:
    """/proc/PID/stat's numeric fields after the state (index 0 is ppid, UTIME utime), [] once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return []
    return [int(field) for field in stat[stat.rindex(b")") + 2 :].split()[1:]]


class EventStream:
    """Reads /batchai/api/v1/events in a thread; every event is stamped with its arrival time
    (`received`, this process's time.time(): the same clock as the server's on one machine)."""

    def __init__(self, service: Service, **filters: str):
        self.events: queue.Queue[dict] = queue.Queue()
        self._response = requests.get(
            f"{service.url}batchai/api/v1/events",
            params=filters,
            stream=True,
            headers={"Authorization": f"token {service.token}"},
            timeout=(10, None),
        )
        self._response.raise_for_status()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._connected.wait(10):
            raise RuntimeError("the event stream did not connect")

    def _read(self) -> None:
        try:
            for line in self._response.iter_lines(chunk_size=None, decode_unicode=True):
                now = time.time()
                if line.startswith(": connected"):
                    self._connected.set()
                elif line.startswith("data: "):
                    event = json.loads(line[6:])
                    event["received"] = now
                    self.events.put(event)
        except Exception:  # closed by close()
            pass

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching event before the timeout")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if predicate(event):
                return event

    def wait_for_job(self, name: str, *states: str, timeout: float = 120.0) -> dict:
        """The first event of job `name` reaching one of `states`."""
        return self.wait_for(lambda e: e.get("name") == name and e.get("state") in states, timeout)

    def close(self) -> None:
        try:
            self._response.raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)  # unblock the reader
        except Exception:
            pass
        self._response.close()


# -- statistics and results ------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank-with-interpolation percentile (p in 0..100)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    k = (len(ordered) - 1) * p / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summary(values: list[float]) -> dict:
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p90": percentile(values, 90),
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def environment() -> dict:
    try:
        commit = subprocess.run(
            ["git", "-C", REPO_ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", REPO_ROOT, "status", "--porcelain", "--", "batchai_jupyter"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", False
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "commit": commit,
        "package_dirty": dirty,
        "loadavg": os.getloadavg(),
        "package_override": os.environ.get("BATCHAI_BENCH_PACKAGE"),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_result(name: str, result: dict, path: str | None = None) -> str:
    result = {"benchmark": name, "environment": environment(), **result}
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = path or os.path.join(RESULTS_DIR, f"{name}.json")
    with open(path, "w") as handle:
        json.dump(result, handle, indent=2)
    return path


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def print_rows(
    title: str,
    rows: list[tuple[str, str, str, str]],
    header: tuple[str, str, str, str] = ("measure", "batchai service", "direct", "service/direct"),
) -> None:
    """rows: (measure, service, direct, ratio), or under another `header`'s four columns."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    print(f"\n{title}")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)))
