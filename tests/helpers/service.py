"""A real `batchai serve` subprocess with its own BATCHAI_HOME, and the token every test service uses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

from batchai_jupyter.backends.local import kill_unfinished_tasks
from batchai_jupyter.client import Client

from .tools import free_port
from .waits import wait_for_server

TOKEN = "test-token-" + uuid.uuid4().hex[:8]


class ServiceProcess:
    """A `batchai serve` subprocess. `kill()` is kill -9; `start()` again re-uses the same home."""

    def __init__(self, home: str, runtime_dir: str, extra_env: dict[str, str] | None = None):
        self.home = home
        self.runtime_dir = runtime_dir
        self.extra_env = dict(extra_env or {})
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = os.path.join(home, "serve-test.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def env(self) -> dict:
        return {
            **os.environ,
            "BATCHAI_HOME": self.home,
            "JUPYTER_RUNTIME_DIR": self.runtime_dir,
            "BATCHAI_URL": self.url,
            "BATCHAI_TOKEN": TOKEN,
            **self.extra_env,
        }

    def start(self, timeout: float = 60.0) -> Client:
        os.makedirs(self.home, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "batchai_jupyter.cli", "serve", "--port", str(self.port)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=self.env(),
            start_new_session=True,
        )
        client = Client(self.url, TOKEN)
        wait_for_server(self.process, client.version, "batchai serve", timeout, self.log)
        return client

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


def kill_leftover_tasks(home: str) -> None:
    """Ends the detached task processes a service under `home` left on its local nodes."""
    kill_unfinished_tasks(os.path.join(home, "nodes"))
