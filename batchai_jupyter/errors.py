"""The one error type users see: what was wrong, where, and what to do."""

from __future__ import annotations

import errno
import sqlite3


class BatchAIError(Exception):
    """An error for the user. `code` is stable and machine-readable; `message` is one clear line.

    `status` is the HTTP status the API answers with; the CLI and magics print `message` only.
    """

    status = 400

    def __init__(self, code: str, message: str, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        if status is not None:
            self.status = status

    def to_json(self) -> dict:
        return {"error": self.code, "message": self.message}


class SpecError(BatchAIError):
    """A job or cluster spec field is wrong: the message names the field path, the value and what is allowed."""

    def __init__(self, path: str, value, allowed: str, code: str = "InvalidSpec"):
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(code, f"{path}: {shown} is not valid; {allowed}")
        self.path = path


class NotFound(BatchAIError):
    status = 404

    def __init__(self, kind: str, name: str, hint: str = ""):
        message = f"{kind} '{name}' not found"
        if hint:
            message += f"; {hint}"
        super().__init__(f"{kind.capitalize()}NotFound", message)


class Conflict(BatchAIError):
    status = 409

    def __init__(self, code: str, message: str):
        super().__init__(code, message)


NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
FREE_SPACE_HINT = (
    "free space there (`batchai job delete` removes a job and its files) or move BATCHAI_HOME to a larger disk"
)


def storage_failure(error: BaseException, store_path: str = "") -> BatchAIError | None:
    """The user's error for a disk that is full or read-only under a request, else None.

    sqlite reports the same accidents as its own errors, without a path: `store_path` names the file then.
    """
    for cause in _causes(error):
        if isinstance(cause, OSError) and cause.errno in (*NO_SPACE_ERRNOS, errno.EROFS):
            return storage_error(cause.errno == errno.EROFS, cause.filename or store_path or "the service's home")
        if isinstance(cause, sqlite3.OperationalError):
            text = str(cause)
            if "disk is full" in text or "readonly database" in text:
                return storage_error("readonly" in text, store_path or "the service's store")
    return None


def storage_error(read_only: bool, path: str) -> BatchAIError:
    """ReadOnlyHome or NoSpace for `path`, saying what to do."""
    if read_only:
        return BatchAIError(
            "ReadOnlyHome",
            f"{path} is on a read-only file system; remount it writable or move BATCHAI_HOME to a writable disk",
            status=503,
        )
    return BatchAIError("NoSpace", f"no space left on {path}; {FREE_SPACE_HINT}", status=507)


def _causes(error: BaseException):
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
