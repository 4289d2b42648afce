"""Staging between a remote datastore (Blob, ...) and the local mirror that nodes read and write.

`MirrorSync` works on any remote that offers `remote_files`, `remote_size`, `download_file`,
`upload_file` and `append`:

- stage_in(folder): downloads the folder's files into the mirror, skipping every file already
  there from the same remote version (etag) and unchanged since: a resubmission receives 0 bytes.
  A file written in the mirror (a job's log or output, copied out by flushes) is never replaced
  by the remote's copy: the mirror is write-back, its own changes win.
- flush(folder): copies the folder's new bytes out. Logs (files under a `stdouterr` folder) are
  appended to, so a reader following the remote copy sees them grow; any other file (an output)
  is uploaded whole once it has stopped changing between two flushes, and at the final flush, so a
  file being written is not sent half-done and a finished one is in the remote by the next flush.
- flush_soon(folder) runs a flush in the background at most every `flush_seconds`; the service
  calls it on every engine cycle and `flush(final=True)` when the job ends.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from abc import ABC
from typing import Protocol

log = logging.getLogger("batchai")
PARTIAL_MARKERS = (".download-", ".upload")
_file_locks: dict[str, threading.Lock] = {}
_file_locks_guard = threading.Lock()


def _lock_for(path: str) -> threading.Lock:
    with _file_locks_guard:
        return _file_locks.setdefault(path, threading.Lock())


def _write_json_atomically(path: str, value: dict) -> None:
    temporary = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    with open(temporary, "w") as handle:
        json.dump(value, handle)
    os.replace(temporary, path)


def _read_json(path: str) -> dict:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


class TransferCounters:
    """Bytes moved and not moved by a datastore, kept in a small JSON file (they outlive restarts)."""

    FIELDS = ("bytesSent", "bytesSkipped", "bytesReceived", "bytesReusedFromMirror")

    def __init__(self, path: str):
        self.path = path

    def add(self, sent: int = 0, skipped: int = 0, received: int = 0, reused: int = 0) -> None:
        with _lock_for(self.path):
            values = self.snapshot()
            for name, amount in zip(self.FIELDS, (sent, skipped, received, reused), strict=True):
                values[name] += amount
            _write_json_atomically(self.path, values)

    def snapshot(self) -> dict:
        stored = _read_json(self.path)
        return {name: int(stored.get(name, 0)) for name in self.FIELDS}


class Remote(Protocol):
    def remote_files(self, folder: str) -> list[tuple[str, int, str]]: ...

    def remote_size(self, path: str) -> int | None: ...

    def download_file(self, path: str, local: str) -> int: ...

    def upload_file(self, local: str, path: str) -> int: ...

    def append(self, path: str, data: bytes, offset: int) -> None: ...


def is_log(path: str) -> bool:
    return "stdouterr" in path.split("/")[:-1]


class MirrorSync:
    def __init__(self, mirror_root: str, remote: Remote, counters: TransferCounters, flush_seconds: float = 2.0):
        self.root = mirror_root
        self.remote = remote
        self.counters = counters
        self.flush_seconds = flush_seconds
        self.index_path = mirror_root + ".staged.json"
        self._appended: dict[str, int] = {}  # log path -> bytes the remote holds
        self._seen: dict[str, tuple[int, int]] = {}  # output path -> (size, mtime) at the last flush
        self._uploaded: dict[str, tuple[int, int]] = {}  # output path -> (size, mtime) last uploaded
        self._flushers: dict[str, threading.Thread] = {}
        self._last_flush: dict[str, float] = {}
        self._guard = threading.Lock()
        self.last_error: str = ""

    def local(self, path: str) -> str:
        return os.path.join(self.root, path)

    # -- in ------------------------------------------------------------------------------------

    def stage_in(self, folder: str) -> dict:
        """Makes the mirror's copy of `folder` match the remote; returns {"received", "reused"} bytes."""
        received = reused = 0
        for path, size, etag in self.remote.remote_files(folder):
            local = self.local(path)
            with _lock_for(self.index_path):
                known = _read_json(self.index_path).get(path)
            if os.path.isfile(local):
                stat = os.stat(local)
                changed_here = not known or known[1:] != [stat.st_size, stat.st_mtime_ns]
                if changed_here or known[0] == etag:  # written here (copied out by a flush), or current
                    reused += size
                    continue
            self.remote.download_file(path, local)
            stat = os.stat(local)
            with _lock_for(self.index_path):
                index = _read_json(self.index_path)
                index[path] = [etag, stat.st_size, stat.st_mtime_ns]
                _write_json_atomically(self.index_path, index)
            received += size
        self.counters.add(reused=reused)
        return {"received": received, "reused": reused}

    # -- out -----------------------------------------------------------------------------------

    def flush(self, folder: str, final: bool = False) -> int:
        """Copies what changed under `folder` out; returns the bytes sent."""
        sent = 0
        top = self.local(folder)
        with _lock_for(self.index_path):
            staged = _read_json(self.index_path)  # files staged in and not changed since are not sent back
        for directory, _dirs, files in os.walk(top):
            for name in sorted(files):
                if any(marker in name for marker in PARTIAL_MARKERS):
                    continue
                local = os.path.join(directory, name)
                path = os.path.relpath(local, self.root).replace(os.sep, "/")
                if is_log(path):
                    sent += self._flush_log(path, local)
                else:
                    sent += self._flush_output(path, local, final, staged.get(path))
        return sent

    def _flush_log(self, path: str, local: str) -> int:
        size = os.path.getsize(local)
        have = self._appended.get(path)
        if have is None:
            have = self.remote.remote_size(path) or 0
        if size < have:  # rewritten shorter: start the remote copy again
            have = 0
        if size == have and path in self._appended:
            return 0
        with open(local, "rb") as handle:
            handle.seek(have)
            data = handle.read(size - have)
        if data or have == 0:
            self.remote.append(path, data, have)
        self._appended[path] = have + len(data)
        return len(data)

    def _flush_output(self, path: str, local: str, final: bool, staged: list | None) -> int:
        stat = os.stat(local)
        state = (stat.st_size, stat.st_mtime_ns)
        if staged and staged[1:] == list(state):
            return 0
        settled = final or self._seen.get(path) == state
        self._seen[path] = state
        if not settled or self._uploaded.get(path) == state:
            return 0
        sent = self.remote.upload_file(local, path)
        self._uploaded[path] = state
        return sent

    # -- in the background -----------------------------------------------------------------------

    def flush_soon(self, folder: str) -> None:
        """Starts a background flush of `folder` unless one ran within flush_seconds or is running."""
        with self._guard:
            running = self._flushers.get(folder)
            if running is not None and running.is_alive():
                return
            if time.monotonic() - self._last_flush.get(folder, 0.0) < self.flush_seconds:
                return
            self._last_flush[folder] = time.monotonic()
            thread = threading.Thread(
                target=self._flush_quietly, args=(folder,), daemon=True, name=f"batchai-flush-{folder}"
            )
            self._flushers[folder] = thread
            thread.start()

    def _flush_quietly(self, folder: str) -> None:
        try:
            self.flush(folder)
            self.last_error = ""
        except Exception as failure:  # the next flush retries; the final one reports
            self.last_error = str(failure)
            log.warning("batchai: flushing %s failed (will retry): %s", folder, failure)

    def flush_final(self, folder: str) -> int:
        """Waits for a background flush of `folder`, then flushes everything; errors are raised."""
        with self._guard:
            running = self._flushers.pop(folder, None)
        if running is not None:
            running.join()
        return self.flush(folder, final=True)


class Mirrored(ABC):
    """A datastore whose nodes work on a local mirror of remote storage (Blob): `sync` stages folders in
    and copies what jobs write out."""

    sync: MirrorSync
