"""`batchai serve status` and `batchai serve stop`: the services running on this machine, found through
Jupyter's runtime files as every client finds them, and stopping the one of a home."""

from __future__ import annotations

import os
import signal
import time

from .client.discovery import RunningService, running_services
from .errors import BatchAIError
from .ports.layout import default_home

STOP_TIMEOUT_SECONDS = 30.0


def _home(args) -> str:
    return os.path.abspath(os.path.expanduser(args.home)) if args.home else default_home()


def _headless(pid: int | None) -> bool | None:
    """Whether the process is a `batchai serve` (not a Jupyter server the user works in); None when this
    system does not say (no /proc)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().decode(errors="replace").split("\0")
    except OSError:
        return None
    return "serve" in argv and any("batchai" in part for part in argv)


def _describe(service: RunningService) -> str:
    kind = {True: "batchai serve", False: "inside a Jupyter server", None: "batchai"}[_headless(service.pid)]
    return (
        f"{service.url} ({kind}, pid {service.pid}, version {service.version}, home {service.home}, "
        f"runtime file {service.runtime_file})"
    )


def serve_status(args) -> int:
    services = running_services()
    if not services:
        print("no batchai service is running on this machine (start one with `batchai serve`)")
        return 1
    home = _home(args)
    for service in services:
        mark = "*" if service.home == home else " "
        print(f"{mark} {_describe(service)}")
    print(f"(* = the service of home {home}, the one clients here use)")
    return 0


def serve_stop(args) -> int:
    home = _home(args)
    mine = [service for service in running_services() if service.home == home]
    if not mine:
        print(f"no batchai service of home {home} is running; nothing to stop")
        return 0
    for service in mine:
        if _headless(service.pid) is False:
            raise BatchAIError(
                "NotStopped",
                f"the batchai service at {service.url} runs inside a Jupyter server "
                f"(pid {service.pid}); stop that server (File > Shut Down) instead",
            )
        if not service.pid:
            raise BatchAIError("NotStopped", f"the service at {service.url} has no pid in {service.runtime_file}")
        os.kill(service.pid, signal.SIGTERM)  # the server shuts down cleanly and removes its runtime file
        _wait_gone(service)
        print(f"stopped the batchai service at {service.url} (pid {service.pid}, home {home})")
    return 0


def _wait_gone(service: RunningService) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            os.kill(service.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise BatchAIError(
        "NotStopped",
        f"the batchai service (pid {service.pid}) is still running "
        f"{STOP_TIMEOUT_SECONDS:.0f}s after SIGTERM; see {service.home}/serve.log",
    )
