"""The threads a monitor owns: a Poller that runs its step until done or stopped (backing off while
nothing changes, woken early by `wake()`), and an EventWaker that wakes it on the service's events."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ...client import Client

log = logging.getLogger("batchai_jupyter")

# step() -> (something changed, finished)
Step = Callable[[], tuple[bool, bool]]


class Poller:
    """Waits `minimum` after a step that changed something, backing off to `maximum` while nothing
    does; its owner may change the pace between steps (`pace()`: a monitor polls a running job's logs
    steadily, and waits long for events while the job is queued)."""

    def __init__(
        self,
        step: Step,
        on_error: Callable[[Exception], None],
        minimum: float = 0.1,
        maximum: float = 1.0,
        name: str = "batchai-monitor",
    ):
        self.step = step
        self.on_error = on_error
        self.minimum = minimum
        self.maximum = maximum
        self.name = name
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def pace(self, minimum: float, maximum: float) -> None:
        self.minimum, self.maximum = minimum, maximum

    def wake(self) -> None:
        """Runs the next step now (something happened)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        delay = self.minimum
        while not self._stop.is_set():
            self._wake.clear()
            try:
                changed, finished = self.step()
            except Exception as failure:  # the view shows it; the thread keeps trying, slowly
                self.on_error(failure)
                changed, finished = False, False
                delay = self.maximum
            if finished:
                return
            delay = min(self.minimum if changed else delay * 1.5, self.maximum)
            if self._wake.wait(delay):
                delay = self.minimum


class EventWaker:
    """Listens to the service's event stream (with `filters`) on its own connection and calls
    `on_event(event)` for each; reconnects with backoff while the stream is unavailable. `connected`
    says whether it is listening now (its owner polls instead while it is not)."""

    RETRY_MIN, RETRY_MAX = 1.0, 15.0

    def __init__(
        self,
        client: Client,
        on_event: Callable[[dict | None], None],
        thread_name: str = "batchai-events",
        **filters: str,
    ):
        self.client = client.clone()
        self.on_event = on_event
        self.filters = filters
        self.connected = False
        self._stream = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def _run(self) -> None:
        retry = self.RETRY_MIN
        while not self._stop.is_set():
            try:
                stream = self.client.events(**self.filters)
                with self._lock:
                    if self._stop.is_set():
                        stream.close()
                        return
                    self._stream = stream
                self.connected = True
                retry = self.RETRY_MIN
                self.on_event(None)  # subscribed: whatever happened before is in the next read
                for event in stream:
                    self.on_event(event)
            except Exception as failure:  # any loss of the stream: retried after a while
                log.debug("event stream unavailable: %s", failure)
            self.connected = False
            if self._stop.wait(retry):
                return
            retry = min(retry * 2, self.RETRY_MAX)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.client.close()


def own_client(client: Client) -> Client:
    """A client of the same service with its own connection pool, for a monitor's thread (closed by it)."""
    return client.clone()
