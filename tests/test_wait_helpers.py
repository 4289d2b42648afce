"""The tests' wait helper: "not there yet" (a 404, a missing file, a refused connection) is retried
until the deadline; any other error fails the wait at once."""

from __future__ import annotations

import pytest

from batchai_jupyter.errors import BatchAIError, NotFound
from helpers.waits import wait_for


def answers_after(failures: list[BaseException], value="ready"):
    """A condition that raises each of `failures` in turn, then returns `value`."""
    pending = list(failures)

    def condition():
        if pending:
            raise pending.pop(0)
        return value

    return condition


@pytest.mark.parametrize(
    "not_yet",
    [
        NotFound("file", "stdout.txt"),
        FileNotFoundError("stdout.txt"),
        ConnectionRefusedError(111, "refused"),
        BatchAIError("ServiceUnreachable", "cannot reach", status=503),
    ],
)
def test_not_there_yet_is_retried(not_yet):
    assert wait_for(answers_after([not_yet, not_yet]), "the file", timeout=10, interval=0.01) == "ready"


@pytest.mark.parametrize(
    "error",
    [
        BatchAIError("InternalError", "failed", status=500),
        BatchAIError("InvalidSpec", "bad", status=400),
        PermissionError("denied"),
        KeyError("executionState"),
    ],
)
def test_any_other_error_fails_the_wait_at_once(error):
    calls = []

    def condition():
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        wait_for(condition, "the job", timeout=10, interval=0.01)
    assert len(calls) == 1


def test_the_deadline_fails_with_what_was_last_seen():
    with pytest.raises(AssertionError) as failure:
        wait_for(
            answers_after([NotFound("job", "j1")] * 1000),
            "job j1",
            timeout=0.2,
            interval=0.01,
            explain=lambda: "the service's log",
        )
    message = str(failure.value)
    assert "waiting for job j1" in message and "job 'j1' not found" in message and "the service's log" in message
