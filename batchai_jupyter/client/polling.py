"""Waiting for a resource to end by reading it again, as the client's wait_for_* calls do."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from ..errors import BatchAIError


def poll_until_ended(
    read: Callable[[], dict],
    seen: Callable[[dict], Hashable],
    ended: Callable[[dict], bool],
    describe: Callable[[dict], str],
    timeout: float | None,
    on_change: Callable[[dict], None] | None,
    poll: float,
) -> dict:
    """Reads the resource until `ended(it)`; `on_change(it)` whenever `seen(it)` differs from the last read.
    Past `timeout` seconds: WaitTimeout, saying what it is still (`describe(it)`)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last: Hashable = None
    while True:
        resource = read()
        now_seen = seen(resource)
        if now_seen != last:
            last = now_seen
            if on_change:
                on_change(resource)
        if ended(resource):
            return resource
        if deadline is not None and time.monotonic() > deadline:
            raise BatchAIError("WaitTimeout", f"{describe(resource)} after {timeout:.0f}s")
        time.sleep(poll)
