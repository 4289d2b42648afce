"""A small thread-safe publish/subscribe bus for state changes (the API's event stream)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

Subscriber = Callable[[dict[str, Any]], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: dict[int, Subscriber] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Calls `callback(event)` for every event until the returned function is called."""
        key = next(self._ids)
        with self._lock:
            self._subscribers[key] = callback

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(key, None)

        return unsubscribe

    def publish(self, kind: str, **fields: Any) -> None:
        event = {"type": kind, "time": time.time(), **fields}
        with self._lock:
            subscribers = list(self._subscribers.values())
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a broken subscriber must not stop the engine
                pass
