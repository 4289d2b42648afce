"""TensorBoard over a job's or an experiment's runs, served through this server and behind its auth.

`POST .../experiments/{e}/tensorboard` (or `.../jobs/{j}/tensorboard`) starts a TensorBoard for those runs,
or reuses the one already running for them, and answers its URL: `<base_url>batchai/tensorboard/<id>/`,
proxied by jupyter-server-proxy's handler (so every request needs the server's token or login, and no
port is opened to anyone but this host's loopback). TensorBoard reads a folder of links to the runs'
directories; each open refreshes the links (an experiment's new jobs appear). The processes are stopped
with the server; ones a killed server left behind are stopped at the next start (their pid files).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import requests

from ..errors import BatchAIError

log = logging.getLogger("batchai")
MAX_INSTANCES = 8  # opening one more stops the one opened longest ago
START_TIMEOUT_SECONDS = 90.0
PROXY_PREFIX = "batchai/tensorboard"
UNAVAILABLE = (
    "TensorBoard is not installed with this service (or jupyter-server-proxy, which serves it); install "
    "them with `pip install batchai-jupyter[tracking]` and restart the server"
)


@dataclass
class Instance:
    id: str
    directory: str
    port: int
    process: subprocess.Popen
    opened: float


class TensorBoards:
    """The TensorBoard processes this server started, one per set of runs (a job, or an experiment)."""

    def __init__(self, root: str):
        self.root = root  # <home>/tensorboard: one folder of run links (and a log and pid file) per instance
        self._instances: dict[str, Instance] = {}
        self._lock = threading.Lock()
        self.available = all(importlib.util.find_spec(name) for name in ("tensorboard", "jupyter_server_proxy"))
        _stop_leftovers(root)

    def open(self, key: str, logdirs: dict[str, str]) -> Instance:
        """The instance for `key` with the runs `logdirs` ({run name: directory}), started if need be."""
        if not self.available:
            raise BatchAIError("TensorBoardUnavailable", UNAVAILABLE, status=503)
        instance_id = hashlib.sha256(key.encode()).hexdigest()[:16]
        directory = os.path.join(self.root, instance_id)
        with self._lock:
            _link_runs(os.path.join(directory, "runs"), logdirs)
            instance = self._instances.get(instance_id)
            if instance is not None and instance.process.poll() is None:
                instance.opened = time.time()
                return instance
            while len(self._instances) >= MAX_INSTANCES:
                oldest = min(self._instances.values(), key=lambda i: i.opened)
                _stop(self._instances.pop(oldest.id))
            instance = _start(instance_id, directory)
            self._instances[instance_id] = instance
        return instance

    def port_of(self, instance_id: str) -> int | None:
        instance = self._instances.get(instance_id)
        return instance.port if instance is not None and instance.process.poll() is None else None

    def stop_all(self) -> None:
        with self._lock:
            for instance in self._instances.values():
                _stop(instance)
            self._instances.clear()


def _link_runs(runs: str, logdirs: dict[str, str]) -> None:
    """`runs/<run name>` -> its directory, for exactly the runs given (links of runs gone are removed)."""
    if os.path.isdir(runs):
        shutil.rmtree(runs)
    for name, target in logdirs.items():
        link = os.path.join(runs, *name.split("/"))
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.makedirs(target, exist_ok=True)  # TensorBoard sees the run once the job writes there
        os.symlink(target, link)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(instance_id: str, directory: str) -> Instance:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "tensorboard.main",
        f"--logdir={os.path.join(directory, 'runs')}",
        "--host=127.0.0.1",
        f"--port={port}",
        "--load_fast=false",  # one process (no data server beside it), reads the links as folders
        "--reload_interval=2",
    ]
    with open(os.path.join(directory, "tensorboard.log"), "ab") as output:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True
        )
    with open(os.path.join(directory, "tensorboard.pid"), "w") as handle:
        handle.write(str(process.pid))
    instance = Instance(instance_id, directory, port, process, time.time())
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BatchAIError(
                "TensorBoardFailed",
                f"TensorBoard exited with code {process.returncode} as it started; see "
                f"{os.path.join(directory, 'tensorboard.log')}",
                status=502,
            )
        try:
            requests.get(f"http://127.0.0.1:{port}/data/environment", timeout=2)
            return instance
        except requests.RequestException:
            time.sleep(0.3)  # not answering yet
    _stop(instance)
    raise BatchAIError(
        "TensorBoardFailed",
        f"TensorBoard did not answer within {START_TIMEOUT_SECONDS:.0f}s; see "
        f"{os.path.join(directory, 'tensorboard.log')}",
        status=504,
    )


def _stop(instance: Instance) -> None:
    if instance.process.poll() is None:
        instance.process.terminate()
        try:
            instance.process.wait(5.0)
        except subprocess.TimeoutExpired:
            instance.process.kill()
            instance.process.wait(5.0)
    try:
        os.remove(os.path.join(instance.directory, "tensorboard.pid"))
    except OSError:
        pass


def _stop_leftovers(root: str) -> None:
    """Stops TensorBoards a killed server of this home left running (their pid files are still there)."""
    if not os.path.isdir(root):
        return
    for instance_id in os.listdir(root):
        pid_file = os.path.join(root, instance_id, "tensorboard.pid")
        try:
            with open(pid_file) as handle:
                pid = int(handle.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"tensorboard.main" in command and any(root.encode() in part for part in command):
            os.kill(pid, signal.SIGTERM)
        os.remove(pid_file)
