"""The one background thread a monitor owns: it polls until done or stopped, and backs off when idle."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ...client import Client

log = logging.getLogger("batchai_jupyter")

# step() -> (something changed, finished)
Step = Callable[[], tuple[bool, bool]]


class Poller:
    def __init__(self, step: Step, on_error: Callable[[Exception], None], minimum: float = 0.1,
                 maximum: float = 1.0, name: str = "batchai-monitor"):
        self.step = step
        self.on_error = on_error
        self.minimum = minimum
        self.maximum = maximum
        self.name = name
        self._stop = threading.Event()
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

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        delay = self.minimum
        while not self._stop.is_set():
            try:
                changed, finished = self.step()
            except Exception as failure:  # the view shows it; the thread keeps trying, slowly
                self.on_error(failure)
                changed, finished = False, False
                delay = self.maximum
            if finished:
                return
            delay = self.minimum if changed else min(delay * 1.5, self.maximum)
            self._stop.wait(delay)


def own_client(client: Client) -> Client:
    """A client of the same service with its own connection pool, for a monitor's thread (closed by it)."""
    return Client(client.url, client.token, client.timeout)
