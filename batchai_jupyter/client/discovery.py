"""Finding the service: BATCHAI_URL / BATCHAI_TOKEN, then Jupyter's runtime files of running servers
with the extension, else a detached local `batchai serve` that this starts (and says so)."""

from __future__ import annotations

import glob
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from ..errors import BatchAIError
from .transport import Transport

START_TIMEOUT_SECONDS = 60.0
Announce = Callable[[str], None]


def find_service(start: bool = True, announce: Announce = print) -> tuple[str, str]:
    """(url, token) of a service to talk to."""
    url = os.environ.get("BATCHAI_URL")
    if url:
        return url, os.environ.get("BATCHAI_TOKEN", "")
    found = _from_jupyter_runtime()
    if found:
        return found
    if not start:
        raise BatchAIError(
            "NoService",
            "no batchai service found; start one with `batchai serve` or set BATCHAI_URL and BATCHAI_TOKEN",
            status=503,
        )
    return start_local_service(announce)


def _wanted_home() -> str | None:
    home = os.environ.get("BATCHAI_HOME")
    return os.path.abspath(os.path.expanduser(home)) if home else None


@dataclass(frozen=True)
class RunningService:
    """A batchai service this machine's Jupyter runtime files name, that answers."""

    url: str
    token: str
    pid: int | None
    home: str
    version: str
    runtime_file: str


def running_services() -> list[RunningService]:
    """The services found through Jupyter's runtime files (headless `batchai serve` or a Jupyter server
    with the extension), newest first; servers without the extension and stale files are left out."""
    from jupyter_core.paths import jupyter_runtime_dir

    files = sorted(
        glob.glob(os.path.join(jupyter_runtime_dir(), "jpserver-*.json")), key=os.path.getmtime, reverse=True
    )
    found = []
    for path in files:
        try:
            with open(path) as handle:
                info = json.load(handle)
            if not _alive(info.get("pid")):
                continue
            probe = Transport(info["url"], info.get("token", ""))
            try:
                version = probe.request("GET", "version")
            finally:
                probe.close()
        except (OSError, ValueError, KeyError, BatchAIError, requests.RequestException):
            continue
        if version:
            found.append(
                RunningService(
                    info["url"],
                    info.get("token", ""),
                    info.get("pid"),
                    version.get("home", ""),
                    version.get("version", ""),
                    path,
                )
            )
    return found


def _from_jupyter_runtime() -> tuple[str, str] | None:
    wanted = _wanted_home()
    for service in running_services():
        if wanted is None or service.home == wanted:
            return service.url, service.token
    return None


def _alive(pid: int | None) -> bool:
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_local_service(announce: Announce = print) -> tuple[str, str]:
    """Starts `batchai serve` detached (it outlives this process) and waits until it answers."""
    from ..ports.layout import default_home

    home = default_home()
    os.makedirs(home, exist_ok=True)
    port, token = _free_port(), secrets.token_hex(24)
    log_path = os.path.join(home, "serve.log")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "batchai_jupyter.cli", "serve", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env={**os.environ, "BATCHAI_HOME": home, "BATCHAI_TOKEN": token},
        )  # never in argv: `ps` shows it
    url = f"http://127.0.0.1:{port}/"
    probe = Transport(url, token)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BatchAIError(
                    "ServiceStartFailed",
                    f"`batchai serve` exited with code {process.returncode}; see {log_path}",
                    status=503,
                )
            try:
                probe.request("GET", "version")
                announce(
                    f"Started a local batchai service at {probe.url} (pid {process.pid}, log {log_path}); "
                    "it keeps running: `batchai serve status` shows it, `batchai serve stop` stops it"
                )
                return url, token
            except BatchAIError:
                time.sleep(0.2)
    finally:
        probe.close()
    raise BatchAIError(
        "ServiceStartFailed",
        f"`batchai serve` did not answer within {START_TIMEOUT_SECONDS:.0f}s; see {log_path}",
        status=503,
    )
