"""Events handed from the service's threads to one event-stream response on the server's loop, in
batches: the first event since the response last took them wakes the loop, the ones that come before
it runs join that wake-up, and the response writes them all in one write. A burst of job events (a
hundred jobs a second start and end) then costs the loop, and the threads that publish them, one
wake-up per batch rather than one per event."""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class EventBatches:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._armed = False  # a wake-up of the loop is on its way
        self._ready = asyncio.Event()

    def put(self, event: dict[str, Any]) -> None:
        """From any thread: queues the event; wakes the loop unless a wake-up is already on its way."""
        with self._lock:
            self._pending.append(event)
            if self._armed:
                return
            self._armed = True
        self._loop.call_soon_threadsafe(self._ready.set)

    async def take(self, timeout: float) -> list[dict[str, Any]]:
        """On the loop: every event queued so far, in order, once there is one; [] after `timeout`."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except asyncio.TimeoutError:
            return []
        self._ready.clear()
        with self._lock:
            events, self._pending, self._armed = self._pending, [], False
        return events
