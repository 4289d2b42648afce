"""Long-running operations as ARM runs them: the request answers 202 with an `Azure-AsyncOperation` URL
(its status: InProgress, Succeeded, Failed) and a `Location` URL (202 while it runs, then 200/204),
both with `Retry-After`.

An operation's status is read from the state of the resource it acts on, so its URLs outlive the server
process that started it (no table of operations is kept): the operation's id names what it does and to
which resource (`Target`), and a create has succeeded once the resource is provisioned, a delete once the
resource is gone, a terminate once the job has ended. The process remembers only what the resource cannot
show: which operations it started, and the errors of their work.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...core.views import iso
from ...errors import BatchAIError

RETRY_AFTER_SECONDS = 1  # the service acts in well under a second; ARM's 15 would only slow callers down
KEEP_AT_MOST = 10000  # errors remembered (oldest forgotten first)
CREATE, DELETE, TERMINATE = "create", "delete", "terminate"
ENDED_JOB_STATES = ("succeeded", "failed")
log = logging.getLogger("batchai")


@dataclass(frozen=True)
class Target:
    """What an operation does (create, delete, terminate) to which resource (its ARM id), and which one of
    that name it acted on (`identity`: a resource deleted and created again under its name is another)."""

    action: str
    resource: str
    uid: str = ""
    started: float = 0.0

    def operation_id(self) -> str:
        data = json.dumps({"a": self.action, "r": self.resource, "u": self.uid, "t": round(self.started, 3)})
        encoded = base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")
        return f"{encoded}.{uuid.uuid4().hex[:12]}"

    @classmethod
    def of(cls, operation_id: str) -> Target:
        try:
            encoded = operation_id.split(".", 1)[0]
            data = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
            target = cls(str(data["a"]), str(data["r"]), str(data.get("u", "")), float(data.get("t", 0.0)))
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            target = None
        if target is None or target.action not in (CREATE, DELETE, TERMINATE):
            raise BatchAIError(
                "OperationNotFound",
                f"operation '{operation_id}' is not an operation of this service; use the URL a request answered",
                status=404,
            )
        return target


@dataclass(frozen=True)
class Resource:
    """The resource an operation acts on, as found now: None where it does not exist."""

    view: dict[str, Any]  # the service's view (a job's carries its uuid)
    envelope: dict[str, Any]  # what GET answers


def identity(view: dict[str, Any]) -> str:
    """Which resource of its name a view is: its uuid (jobs, clusters), else when it was created."""
    return str(view.get("uuid") or view.get("creationTime") or "")


def status_of(target: Target, found: Resource | None, mine: bool, error: dict[str, str] | None) -> str:
    """InProgress, Succeeded or Failed, from the resource's state; `mine`: this process started the
    operation (its work is done or under way); `error`: the failure of that work, if it failed."""
    if error:
        return "Failed"
    if target.uid and found is not None and identity(found.view) != target.uid:
        found = None  # the resource of that name now is another one: the operation's is gone
    if target.action == CREATE:
        state = found.envelope["properties"].get("provisioningState") if found else "succeeded"
        return {"succeeded": "Succeeded", "deleting": "Succeeded", "failed": "Failed"}.get(state, "InProgress")
    if found is None:
        return "Succeeded"  # deleted, or (terminate) the job was deleted since
    if target.action == DELETE:
        # still there: being deleted, here or by the engine after a restart; else the delete was lost
        deleting = found.envelope["properties"].get("provisioningState") == "deleting"
        return "InProgress" if mine or deleting else "Failed"
    state = found.view.get("executionState")
    if state in ENDED_JOB_STATES:
        return "Succeeded"
    return "InProgress" if mine or state == "terminating" else "Failed"


def lost_error(target: Target) -> dict[str, str]:
    """The error of a delete or terminate that a restart of the service interrupted before it took hold."""
    return {
        "code": "OperationInterrupted",
        "message": f"the {target.action} of {target.resource} did not take hold (the service restarted while it "
        f"ran); send the {target.action} again",
    }


def operation_view(operation_id: str, target: Target, status: str, error: dict[str, str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": operation_id, "name": operation_id, "status": status}
    if target.started:
        body["startTime"] = iso(target.started)
    if error:
        body["error"] = error
    return body


class Operations:
    """What this process knows of the operations it runs (thread-safe: work ends on worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mine: dict[str, dict[str, str] | None] = {}  # id -> its work's error (None: none, or not yet)
        self._tasks: set[asyncio.Task[None]] = set()

    def done(self, action: str, resource: str, uid: str = "") -> str:
        """The id of an operation whose work the request itself did (a create the service makes at once)."""
        return Target(action, resource, uid, time.time()).operation_id()

    def start(self, action: str, resource: str, work: Callable[[], object], uid: str = "") -> str:
        """Runs `work` off the IOLoop; its BatchAIError becomes the operation's error."""
        operation_id = Target(action, resource, uid, time.time()).operation_id()
        with self._lock:
            while len(self._mine) >= KEEP_AT_MOST:  # oldest first (dicts keep insertion order)
                del self._mine[next(iter(self._mine))]
            self._mine[operation_id] = None

        async def run() -> None:
            failed: dict[str, str] | None = None
            try:
                await asyncio.to_thread(work)
            except BatchAIError as failure:
                failed = {"code": failure.code, "message": failure.message}
            except Exception:
                log.exception("batchai: operation %s failed", operation_id)
                failed = {"code": "InternalError", "message": "the operation failed; see the service's log"}
            if failed:
                with self._lock:
                    self._mine[operation_id] = failed

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._tasks.discard)
        return operation_id

    def known(self, operation_id: str) -> tuple[bool, dict[str, str] | None]:
        """(whether this process started it, its work's error if that failed)."""
        with self._lock:
            return operation_id in self._mine, self._mine.get(operation_id)
