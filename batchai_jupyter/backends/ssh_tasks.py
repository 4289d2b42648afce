"""A task running on an SSH host, seen from the service: where its files are on both sides, and the
thread that streams its logs back live and copies its outputs (checkpoints) while it runs.

The record of each task is kept in a small JSON file under the service's home, so a restarted
service finds the task again and re-attaches to it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from .ssh_connection import HostConnection, SshError
from .ssh_staging import Stager, remote_size

log = logging.getLogger("batchai_jupyter")
LOG_POLL_SECONDS = 0.5
STOP_WAIT_SECONDS = 10.0  # how long stop() waits for a copy in flight; a later write is skipped anyway


@dataclass
class TaskRecord:
    host: dict  # HostSpec fields
    login: dict  # SshOptions.to_dict()
    run_dir: str  # on the host
    logs: list[list[str]] = field(default_factory=list)  # [remote file, local file]
    outputs: list[list[str]] = field(default_factory=list)  # [remote dir, local dir]

    def save(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temporary = path + ".tmp"
        with open(temporary, "w") as handle:
            json.dump(asdict(self), handle)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str) -> TaskRecord | None:
        try:
            with open(path) as handle:
                return cls(**json.load(handle))
        except (OSError, ValueError, TypeError):
            return None


def copy_new_log_bytes(sftp, remote: str, local: str, abandoned: Callable[[], bool] = lambda: False) -> int:
    """Appends what `remote` has beyond `local`'s length to `local`; the local size is the offset,
    so a restarted service carries on where it stopped. Once `abandoned()` says so, nothing more
    is written (it is asked again after every read from the host, which may take long)."""
    size = remote_size(sftp, remote)
    if abandoned():
        return 0
    if size is not None and not os.path.exists(local):
        open(local, "ab").close()  # an empty log is listed too, as on the local backend
    offset = os.path.getsize(local) if os.path.exists(local) else 0
    if size is None or size <= offset:
        return 0
    copied = 0
    with sftp.open(remote, "rb") as source, open(local, "ab") as target:
        source.seek(offset)
        source.prefetch(size - offset)
        while copied < size - offset:
            block = source.read(min(1 << 20, size - offset - copied))
            if not block or abandoned():
                break
            target.write(block)
            copied += len(block)
    return copied


class TaskFollower:
    """Streams a task's stdout/stderr into the datastore and syncs its outputs every
    `output_sync_seconds`, until `finish()` does the last copy of both."""

    def __init__(self, connection: HostConnection, record: TaskRecord, stager: Stager, output_sync_seconds: float):
        self.connection = connection
        self.record = record
        self.stager = stager
        self.output_sync_seconds = output_sync_seconds
        self._stop = threading.Event()
        self._abandoned = threading.Event()  # stop(): no copy at all any more, not even a last one
        self._lock = threading.Lock()  # one copier at a time: the thread or finish()
        self._thread = threading.Thread(target=self._loop, name=f"batchai-ssh-follow-{record.run_dir}", daemon=True)

    def start(self) -> TaskFollower:
        self._thread.start()
        return self

    def _loop(self) -> None:
        last_outputs = time.monotonic()
        sftp = None
        while not self._stop.wait(LOG_POLL_SECONDS):
            try:
                if sftp is None:
                    sftp = self.connection.sftp()
                with self._lock:
                    if self._stop.is_set():
                        break
                    self._copy_logs(sftp)
                    if time.monotonic() - last_outputs >= self.output_sync_seconds:
                        self._collect_outputs()
                        last_outputs = time.monotonic()
            except (SshError, OSError, EOFError) as failure:
                log.debug("batchai ssh: following %s: %s", self.record.run_dir, failure)
                if sftp is not None:
                    sftp.close()
                sftp = None
        if sftp is not None:
            sftp.close()

    def _copy_logs(self, sftp) -> None:
        for remote, local in self.record.logs:
            os.makedirs(os.path.dirname(local), exist_ok=True)
            copy_new_log_bytes(sftp, remote, local, self._abandoned.is_set)

    def _collect_outputs(self) -> None:
        for remote, local in self.record.outputs:
            self.stager.collect(self.connection, remote, local)

    def finish(self) -> None:
        """The last copy of logs and outputs, once the task has ended; the thread stops."""
        self._stop.set()
        with self._lock:
            sftp = self.connection.sftp()
            try:
                self._copy_logs(sftp)
            finally:
                sftp.close()
            self._collect_outputs()

    def stop(self) -> None:
        """Stops following without a last copy. Nothing of this task is written once this returns: the
        job may start its next attempt at once, and a late copy of a lost node's log would land beside
        the new attempt's (the old logs are archived by then)."""
        self._abandoned.set()
        self._stop.set()
        if self._lock.acquire(timeout=STOP_WAIT_SECONDS):  # a copy in flight ends at its next block
            self._lock.release()
