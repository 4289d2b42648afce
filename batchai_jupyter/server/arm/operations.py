"""Long-running operations as ARM runs them: the request answers 202 with an `Azure-AsyncOperation` URL
(its status: InProgress, Succeeded, Failed) and a `Location` URL (202 while it runs, then 200/204),
both with `Retry-After`.

Operations live in the server process that started them: after a restart their URLs answer 404
OperationNotFound, and the resource itself (GET) says where it got to.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...core.views import iso
from ...errors import BatchAIError

RETRY_AFTER_SECONDS = 1  # the service acts in well under a second; ARM's 15 would only slow callers down
KEEP_SECONDS = 3600.0  # ended operations are forgotten after this long
KEEP_AT_MOST = 10000
log = logging.getLogger("batchai")


@dataclass
class Operation:
    id: str
    location: str
    result_status: int  # what the Location URL answers once it succeeded: 200 (a result) or 204
    started: float = field(default_factory=time.time)
    ended: float | None = None
    error: dict[str, str] | None = None

    @property
    def status(self) -> str:
        if self.ended is None:
            return "InProgress"
        return "Failed" if self.error else "Succeeded"

    def view(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.id,
            "status": self.status,
            "startTime": iso(self.started),
            "endTime": iso(self.ended),
        }
        if self.error:
            body["error"] = self.error
        return body


class Operations:
    """The server's operations, by id (thread-safe: work ends on worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._operations: dict[str, Operation] = {}
        self._running: set[asyncio.Task[None]] = set()

    def done(self, location: str, result_status: int = 200) -> Operation:
        """An operation whose work was done in the request itself (a create the service makes at once)."""
        operation = self._add(location, result_status)
        operation.ended = operation.started
        return operation

    def start(self, location: str, work: Callable[[], object], result_status: int = 204) -> Operation:
        """Runs `work` off the IOLoop; its BatchAIError becomes the operation's error."""
        operation = self._add(location, result_status)

        async def run() -> None:
            try:
                await asyncio.to_thread(work)
            except BatchAIError as failure:
                operation.error = {"code": failure.code, "message": failure.message}
            except Exception:
                log.exception("batchai: operation %s failed", operation.id)
                operation.error = {"code": "InternalError", "message": "the operation failed; see the service's log"}
            finally:
                operation.ended = time.time()

        task = asyncio.get_running_loop().create_task(run())
        self._running.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._running.discard)
        return operation

    def get(self, operation_id: str) -> Operation:
        with self._lock:
            operation = self._operations.get(operation_id)
        if operation is None:
            raise BatchAIError(
                "OperationNotFound",
                f"operation '{operation_id}' is not known here (the service may have restarted since); "
                "GET the resource to see its state",
                status=404,
            )
        return operation

    def _add(self, location: str, result_status: int) -> Operation:
        operation = Operation(str(uuid.uuid4()), location, result_status)
        now = time.time()
        with self._lock:
            stale = [k for k, o in self._operations.items() if o.ended is not None and now - o.ended > KEEP_SECONDS]
            for key in stale:
                del self._operations[key]
            while len(self._operations) >= KEEP_AT_MOST:  # oldest first (dicts keep insertion order)
                del self._operations[next(iter(self._operations))]
            self._operations[operation.id] = operation
        return operation
