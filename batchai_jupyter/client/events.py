"""The service's event stream (server-sent events): one dict per state change, until closed."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import requests

from .transport import Transport

# The server sends a keepalive comment every 15 s; a stream silent for longer has lost its server.
READ_TIMEOUT_SECONDS = 45.0


class EventStream:
    """Subscribed once constructed (the server has registered it when its headers arrive), so an
    event that follows a read made after this returns is never missed. `close()` may be called from
    another thread: it ends a blocked iteration."""

    def __init__(self, transport: Transport, **filters: str):
        params = {key: value for key, value in filters.items() if value is not None}
        self._response: requests.Response = transport.request(
            "GET", "events", params=params, stream=True, timeout=(10.0, READ_TIMEOUT_SECONDS)
        )
        self.closed = False

    def __iter__(self) -> Iterator[dict]:
        try:
            for line in self._response.iter_lines():
                if line.startswith(b"data: "):
                    yield json.loads(line[6:])
        except (requests.RequestException, OSError, ValueError, AttributeError):
            if not self.closed:
                raise
        self._response.close()

    def close(self) -> None:
        self.closed = True
        sock = _socket_of(self._response)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in recv
            except OSError:
                pass
        self._response.close()


def _socket_of(response: requests.Response) -> socket.socket | None:
    connection = getattr(response.raw, "_connection", None) or getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        reader = getattr(getattr(response.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(reader, "raw", None), "_sock", None)
    return sock
