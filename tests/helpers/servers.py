"""A server process started the way a user (or an attacker) starts one: `batchai serve ...` or
`jupyter server ...` with its own home, runtime and config directories, and raw HTTP to its batchai API."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import requests

API = "batchai/api/v1"


class Launch:
    """One server process (`batchai serve ...` or `jupyter server ...`) with its own home and runtime dir."""

    def __init__(self, base, port: int):
        self.base = base
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.log_path = str(base / "server.log")
        self.process: subprocess.Popen | None = None
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("BATCHAI_URL", "BATCHAI_TOKEN", "JUPYTER_TOKEN")
        }
        self.env.update(
            BATCHAI_HOME=str(base / "home"),
            JUPYTER_RUNTIME_DIR=str(base / "runtime"),
            JUPYTER_CONFIG_DIR=str(base / "config"),
            JUPYTER_DATA_DIR=str(base / "data"),
        )

    def serve_argv(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "batchai_jupyter.cli", "serve", "--port", str(self.port), *extra]

    def jupyter_argv(self, *extra: str) -> list[str]:
        root = self.base / "notebooks"
        root.mkdir(exist_ok=True)
        return [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--port={self.port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            "--allow-root",
            "--no-browser",
            f"--ServerApp.root_dir={root}",
            *extra,
        ]

    def refused(self, argv: list[str], **env: str) -> str:
        """Runs a server that must refuse to start; returns what it said."""
        result = subprocess.run(
            argv, env={**self.env, **env}, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"the server started:\n{output[-3000:]}"
        return output

    def start(
        self, argv: list[str], token: str | None = None, timeout: float = 90.0, ready: int = 200, **env: str
    ) -> None:
        """Starts a server and waits until its batchai API answers `ready` (with `token`, or none)."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv, env={**self.env, **env}, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
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
