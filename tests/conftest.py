"""Shared fixtures: a real `batchai serve` process on a free port with its own BATCHAI_HOME."""
from __future__ import annotations

import itertools
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
import requests

from batchai_jupyter.backends.local import kill_unfinished_tasks
from batchai_jupyter.client import Client
from batchai_jupyter.errors import BatchAIError

TOKEN = "test-token-" + uuid.uuid4().hex[:8]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def port() -> int:
    """A free TCP port on 127.0.0.1."""
    return free_port()


def wait_listening(process: subprocess.Popen, port: int, what: str, log: str, timeout: float) -> None:
    """Waits until the server `process` accepts connections on 127.0.0.1:`port`; fails if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}; see {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout}s")


def require_tool(name: str, install_hint: str) -> str:
    """Tests that need a tool fail (never skip) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; {install_hint} (.ci/run installs it)")
    return path


class ServiceProcess:
    """A `batchai serve` subprocess. `kill()` is kill -9; `start()` again re-uses the same home."""

    def __init__(self, home: str, runtime_dir: str):
        self.home = home
        self.runtime_dir = runtime_dir
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = os.path.join(home, "serve-test.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def env(self) -> dict:
        return {**os.environ, "BATCHAI_HOME": self.home, "JUPYTER_RUNTIME_DIR": self.runtime_dir,
                "BATCHAI_URL": self.url, "BATCHAI_TOKEN": TOKEN}

    def start(self, timeout: float = 60.0) -> Client:
        os.makedirs(self.home, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "batchai_jupyter.cli", "serve", "--port", str(self.port)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=self.env(), start_new_session=True)
        client = Client(self.url, TOKEN)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"batchai serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                client.version()
                return client
            except BatchAIError:
                time.sleep(0.1)
        raise RuntimeError(f"batchai serve did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        with open(self.log_path, errors="replace") as handle:
            return handle.read()[-5000:]

    def kill(self) -> None:
        """kill -9 the service only (its detached job wrappers survive, as on a real crash)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _kill_leftover_tasks(home: str) -> None:
    kill_unfinished_tasks(os.path.join(home, "nodes"))


@pytest.fixture
def service_process(tmp_path):
    service = ServiceProcess(str(tmp_path / "home"), str(tmp_path / "runtime"))
    yield service
    service.stop()
    _kill_leftover_tasks(service.home)


@pytest.fixture
def client(service_process) -> Client:
    return service_process.start()


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory):
    """One service for a whole test module, for tests that only add their own uniquely named things."""
    base = tmp_path_factory.mktemp("shared")
    service = ServiceProcess(str(base / "home"), str(base / "runtime"))
    service.start()
    yield service
    service.stop()
    _kill_leftover_tasks(service.home)


@pytest.fixture
def shared_client(shared_service) -> Client:
    return Client(shared_service.url, TOKEN)


_names = itertools.count(1)


@pytest.fixture
def unique():
    """unique('job') -> 'job-<n>-<random>' so tests sharing a service never collide."""
    tag = uuid.uuid4().hex[:6]
    return lambda prefix: f"{prefix}-{next(_names)}-{tag}"


def make_cluster(client: Client, name: str, nodes: int = 2, wait: bool = True, **extra) -> dict:
    client.create_cluster("default", {"backend": "local", "nodeCount": nodes, **extra}, name)
    if wait:
        return wait_for(lambda: _steady(client, name, nodes), f"cluster {name} to have {nodes} idle nodes")
    return client.get(client.cluster_path("default", name))


def _steady(client: Client, name: str, nodes: int):
    cluster = client.get(client.cluster_path("default", name))
    counts = cluster["nodeStateCounts"]
    return cluster if counts["idleNodeCount"] + counts["runningNodeCount"] == nodes else None


def wait_for(condition, what: str, timeout: float = 60.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def submit(client: Client, name: str, cluster: str, spec: dict, experiment: str = "default") -> dict:
    return client.create_job("default", experiment, {"cluster": cluster, **spec}, name)


def wait_job(client: Client, name: str, timeout: float = 120.0, experiment: str = "default") -> dict:
    return client.wait_for_job("default", experiment, name, timeout=timeout)


def read_log(client: Client, job: str, file_name: str, output_id: str = "stdouterr",
             experiment: str = "default") -> str:
    return client.read_job_file("default", experiment, job, file_name, output_id).decode()


# -- gate files: make job ordering deterministic ------------------------------------------------
# A job blocks in `wait_gate(GATE)` until the test calls open_gate(GATE); `append` records order.

def wait_gate(gate) -> str:
    return f"while [ ! -f {shlex.quote(str(gate))} ]; do sleep 0.05; done"


def open_gate(gate) -> None:
    with open(gate, "w"):
        pass


def append(path, text: str) -> str:
    return f"echo {shlex.quote(text)} >> {shlex.quote(str(path))}"


def lines(path) -> list[str]:
    try:
        with open(path) as handle:
            return handle.read().split()
    except FileNotFoundError:
        return []


# -- what a job leaves behind on its nodes -------------------------------------------------------


class LeftoverProbe:
    """A 2-rank pytorch job script whose every rank starts two background sleeps named after a
    token (one in its process group, one in a session of its own), and a /proc scan for them.
    `python ranks.py TOKEN GO`: rank 1 exits 3 once the file GO exists (~ expands); rank 0 and,
    until then, rank 1 stay in the foreground."""

    SCRIPT = r'''
import os, subprocess, sys, time
token, go = sys.argv[1], os.path.expanduser(sys.argv[2])
rank = os.environ["RANK"]
subprocess.Popen([f"{token}-r{rank}-group", "600"], executable="/bin/sleep")
subprocess.Popen([f"{token}-r{rank}-session", "600"], executable="/bin/sleep", start_new_session=True)
while rank == "1" and not os.path.exists(go):
    time.sleep(0.05)
sys.exit(3) if rank == "1" else time.sleep(600)
'''

    @staticmethod
    def token() -> str:
        return "batchai-test-" + uuid.uuid4().hex[:10]

    @staticmethod
    def expected(token: str) -> list[str]:
        return [f"{token}-r{rank}-{kind}" for rank in "01" for kind in ("group", "session")]

    @staticmethod
    def processes(token: str) -> list[str]:
        """Live (non-zombie) processes whose argv[0] starts with `token`, by that name."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    name = handle.read().split(b"\0")[0].decode(errors="replace")
                with open(f"/proc/{entry}/stat") as handle:
                    state = handle.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if name.startswith(token) and state != "Z":
                found.append(name)
        return sorted(found)


@pytest.fixture
def leftover_probe() -> LeftoverProbe:
    return LeftoverProbe()


# -- servers started the way a user (or an attacker) starts them -----------------------------------

API = "batchai/api/v1"


class Launch:
    """One server process (`batchai serve ...` or `jupyter server ...`) with its own home and runtime dir."""

    def __init__(self, base, port: int):
        self.base = base
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.log_path = str(base / "server.log")
        self.process: subprocess.Popen | None = None
        self.env = {key: value for key, value in os.environ.items()
                    if key not in ("BATCHAI_URL", "BATCHAI_TOKEN", "JUPYTER_TOKEN")}
        self.env.update(BATCHAI_HOME=str(base / "home"), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
                        JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_DATA_DIR=str(base / "data"))

    def serve_argv(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "batchai_jupyter.cli", "serve", "--port", str(self.port), *extra]

    def jupyter_argv(self, *extra: str) -> list[str]:
        root = self.base / "notebooks"
        root.mkdir(exist_ok=True)
        return [sys.executable, "-m", "jupyter_server", f"--port={self.port}", "--ServerApp.ip=127.0.0.1",
                "--ServerApp.port_retries=0", "--allow-root", "--no-browser", f"--ServerApp.root_dir={root}", *extra]

    def refused(self, argv: list[str], **env: str) -> str:
        """Runs a server that must refuse to start; returns what it said."""
        result = subprocess.run(argv, env={**self.env, **env}, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=120)
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"the server started:\n{output[-3000:]}"
        return output

    def start(self, argv: list[str], token: str | None = None, timeout: float = 90.0, ready: int = 200,
              **env: str) -> None:
        """Starts a server and waits until its batchai API answers `ready` (with `token`, or none)."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, env={**self.env, **env}, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if self.get("version", token).status_code == ready:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server did not answer within {timeout}s:\n{self.log()}")

    def get(self, path: str, token: str | None = None, **params) -> requests.Response:
        headers = {"Authorization": f"token {token}"} if token else {}
        return requests.get(f"{self.url}{API}/{path}", headers=headers, params=params, timeout=30)

    def listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def launch(tmp_path, port):
    server = Launch(tmp_path, port)
    yield server
    server.stop()
