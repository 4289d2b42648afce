"""Waiting for something to happen. A thing that is not there yet (a 404, a missing file, a service
that does not listen yet) is "not yet", never an error: only the deadline fails a wait."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import requests
from tornado.httpclient import HTTPClientError

from batchai_jupyter.errors import BatchAIError

# The client's answer when nothing listens at the service's address.
_UNREACHABLE = "ServiceUnreachable"


def not_there_yet(error: BaseException) -> bool:
    """Whether `error` only says that what a wait looks for does not exist yet."""
    if isinstance(error, BatchAIError):
        return error.status == 404 or error.code == _UNREACHABLE
    if isinstance(error, HTTPClientError):  # an in-process server's answer (tornado's client)
        return error.code == 404
    # ConnectionError and TimeoutError: a server that is not listening, or not answering, yet.
    return isinstance(
        error, (FileNotFoundError, ConnectionError, TimeoutError, requests.ConnectionError, requests.Timeout)
    )


def wait_for(
    condition: Callable[[], Any],
    what: str,
    timeout: float = 60.0,
    interval: float = 0.1,
    explain: Callable[[], str] | None = None,
) -> Any:
    """Returns the first truthy value of `condition()`. Errors that mean "not there yet" count as a falsy
    value; any other error is raised at once. `explain()` adds context (logs) to a timeout's message."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as error:
            if not not_there_yet(error):
                raise
            last_error, value = error, None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(_timed_out(what, timeout, last_error, explain))


async def wait_for_async(
    condition: Callable[[], Awaitable[Any]], what: str, timeout: float = 60.0, interval: float = 0.1
) -> Any:
    """`wait_for` for a test that shares its event loop with the server it waits on (an in-process
    Jupyter server): it awaits `condition()` and sleeps without blocking the loop."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = await condition()
        except Exception as error:
            if not not_there_yet(error):
                raise
            last_error, value = error, None
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(_timed_out(what, timeout, last_error, None))


def _timed_out(what: str, timeout: float, last_error: BaseException | None, explain: Callable[[], str] | None) -> str:
    message = f"timed out after {timeout}s waiting for {what}"
    if last_error is not None:
        message += f" (last seen: {type(last_error).__name__}: {last_error})"
    if explain is not None:
        message += "\n" + explain()
    return message


def wait_for_server(
    process: subprocess.Popen, answers: Callable[[], Any], what: str, timeout: float, log: Callable[[], str]
) -> Any:
    """Waits until the server `process` answers (`answers()` is truthy); fails at once, with its log,
    if the process exits first."""

    def answered():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log()}")
        return answers()

    return wait_for(answered, f"{what} to answer", timeout=timeout, explain=log)


def wait_listening(process: subprocess.Popen, port: int, what: str, log: str, timeout: float) -> None:
    """Waits until the server `process` accepts connections on 127.0.0.1:`port`; fails if it exits first."""

    def accepts() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_for_server(process, accepts, what, timeout, lambda: f"see {log}")
