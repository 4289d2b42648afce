"""The one error type users see: what was wrong, where, and what to do."""

from __future__ import annotations


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
