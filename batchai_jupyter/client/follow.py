"""Following files of a job as they grow, by ranged reads: the one follower every view of logs uses."""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import BatchAIError

if TYPE_CHECKING:
    from .api import Client

ENDED = ("succeeded", "failed")


class FileTail:
    """The new bytes (or text) of one job file since the last read; nothing while it does not exist yet."""

    def __init__(
        self,
        client: Client,
        workspace: str,
        experiment: str,
        job: str,
        path: str,
        output_id: str = "stdouterr",
        offset: int = 0,
    ):
        self.client = client
        self.where = (workspace, experiment, job)
        self.path = path
        self.output_id = output_id
        self.offset = offset
        self.exists = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def read_bytes(self) -> bytes:
        try:
            chunk = self.client.read_job_file(*self.where, self.path, self.output_id, self.offset)
        except BatchAIError as failure:
            if failure.code == "FileNotFound":
                return b""
            raise
        self.exists = True
        self.offset += len(chunk)
        return chunk

    def decode(self, chunk: bytes) -> str:
        return self._decoder.decode(chunk)

    def read(self) -> str:
        return self.decode(self.read_bytes())


# (job) -> the files to follow now: a list of paths, or None while they are not known yet (asked again
# on the next round, and after a retry starts a new attempt)
Choose = Callable[[dict], "list[str] | None"]


def follow_job(
    client: Client,
    workspace: str,
    experiment: str,
    job: str,
    files: Choose | list[str],
    on_data: Callable[[str, Any], None],
    *,
    output_id: str = "stdouterr",
    text: bool = False,
    on_state: Callable[[dict], None] | None = None,
    on_missing: Callable[[str], None] | None = None,
    timeout: float | None = None,
    poll: float = 0.2,
) -> dict:
    """Delivers each file's new bytes (str with `text`) as the job writes them, until the job has ended
    and everything is read; returns the ended job. A retried job's files are followed afresh from 0."""
    choose = files if callable(files) else (lambda _job: list(files))
    deadline = None if timeout is None else time.monotonic() + timeout
    tails: dict[str, FileTail] = {}
    chosen: list[str] | None = None
    attempt = state = None
    announced: set[str] = set()
    while True:
        info = client.job(workspace, experiment, job)  # the state first: read after it, a file is complete
        if info["executionState"] != state:
            state = info["executionState"]
            if on_state:
                on_state(info)
        if info.get("attempt") != attempt:
            tails, chosen, attempt = {}, None, info.get("attempt")
        if chosen is None:
            chosen = choose(info)
        got = False
        for path in chosen or []:
            tail = tails.setdefault(path, FileTail(client, workspace, experiment, job, path, output_id))
            chunk = tail.read_bytes()
            if chunk:
                on_data(path, tail.decode(chunk) if text else chunk)
                got = True
            elif not tail.exists and on_missing and path not in announced and state not in ENDED:
                on_missing(path)
                announced.add(path)
        if got:
            continue
        if state in ENDED:
            return info
        if deadline is not None and time.monotonic() > deadline:
            raise BatchAIError("WaitTimeout", f"job '{job}' is still {state} after {timeout:.0f}s")
        time.sleep(poll)
