"""Moving files between the service and a host over SFTP.

Up: into a per-host content-addressed cache (`<root>/cache/<sha256>`), so a file the host already
has is never sent again; a job's directory is then built from the cache with hard links (inputs)
or copies (outputs staged back in, which the job may rewrite). Big files go in parallel chunks,
each over its own SFTP channel with pipelined writes, so the link stays full.

Down: only files whose size or modification time changed are fetched (outputs and checkpoints,
collected while a job runs and at its end).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .ssh_connection import HostConnection

CHUNK_BYTES = 32 * 1024 * 1024  # a big file is sent as chunks of this size, in parallel
PARALLEL_STREAMS = 4
READ_BYTES = 1024 * 1024


class FileHashes:
    """sha256 of local files, remembered by (path, size, mtime) so unchanged files are read once."""

    def __init__(self):
        self._known: dict[str, tuple[int, int, str]] = {}
        self._lock = threading.Lock()

    def of(self, path: str) -> str:
        info = os.stat(path)
        with self._lock:
            known = self._known.get(path)
        if known and known[:2] == (info.st_size, info.st_mtime_ns):
            return known[2]
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(READ_BYTES), b""):
                digest.update(block)
        with self._lock:
            self._known[path] = (info.st_size, info.st_mtime_ns, digest.hexdigest())
        return digest.hexdigest()


@dataclass
class Transfer:
    files: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


def _local_files(local: str) -> list[tuple[str, str]]:
    """(relative path, absolute path) of every regular file under `local` (a file or a directory)."""
    if os.path.isfile(local):
        return [("", local)]
    found = []
    for directory, _subdirs, names in os.walk(local):
        for name in names:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append((os.path.relpath(path, local), path))
    return found


class Stager:
    def __init__(self, hashes: FileHashes, streams: int = PARALLEL_STREAMS):
        self.hashes = hashes
        self.streams = streams

    # -- up --------------------------------------------------------------------------------

    def stage(self, connection: HostConnection, cache: str, pairs: list[tuple[str, str, bool]]) -> Transfer:
        """Makes each remote path a copy of its local file or directory: [(local, remote, copy)].

        `copy` False hard-links the cached file (read-only inputs); True copies it (outputs
        staged back in, which a job may rewrite in place)."""
        entries: list[tuple[str, str, str, bool]] = []  # (sha, local file, remote file, copy)
        mtimes: dict[str, float] = {}
        directories: set[str] = set()
        for local, remote, copy in pairs:
            if os.path.isdir(local):
                directories.add(remote)
            for relative, path in _local_files(local):
                target = f"{remote}/{relative}" if relative else remote
                entries.append((self.hashes.of(path), path, target, copy))
                mtimes[target] = os.path.getmtime(path)
        transfer = Transfer(files=len(entries))
        missing = self._missing(connection, cache, {sha for sha, *_ in entries})
        sources = {sha: path for sha, path, *_ in entries}
        for sha in sorted(missing):
            transfer.bytes_sent += self._upload(connection, sources[sha], f"{cache}/{sha}")
        script = [f"mkdir -p {' '.join(shlex.quote(d) for d in sorted(directories))}"] if directories else []
        for sha, _path, target, copy in entries:
            parent = shlex.quote(os.path.dirname(target))
            source, quoted = shlex.quote(f"{cache}/{sha}"), shlex.quote(target)
            # A copy keeps the original's time, so collect() never takes an unchanged copy for news.
            how = (
                f"cp {source} {quoted} && touch -m -d @{mtimes[target]:.6f} {quoted}"
                if copy
                else f"ln -f {source} {quoted} 2>/dev/null || cp {source} {quoted}"
            )
            script.append(f"mkdir -p {parent} && rm -f {quoted} && {how}")
        if script:
            connection.check("sh -se", stdin=("\n".join(script) + "\n").encode())
        return transfer

    def _missing(self, connection: HostConnection, cache: str, hashes: set[str]) -> set[str]:
        if not hashes:
            return set()
        script = (
            f"mkdir -p {shlex.quote(cache)} && cd {shlex.quote(cache)} && while read h; do "
            '[ -f "$h" ] || echo "$h"; done\n'
        )
        out = connection.check(f"sh -c {shlex.quote(script)}", stdin=("\n".join(sorted(hashes)) + "\n").encode())
        return {line.strip() for line in out.splitlines() if line.strip()}

    def _upload(self, connection: HostConnection, local: str, remote: str) -> int:
        """Sends one file to `remote` (atomically: a temporary name, then a rename)."""
        size = os.path.getsize(local)
        temporary = f"{remote}.part-{uuid.uuid4().hex[:8]}"
        chunks = [(offset, min(CHUNK_BYTES, size - offset)) for offset in range(0, size, CHUNK_BYTES)] or [(0, 0)]
        sftp = connection.sftp()
        try:
            sftp.open(temporary, "wb").close()
            if len(chunks) == 1:
                self._send_chunk(sftp, local, temporary, *chunks[0])
            else:
                with ThreadPoolExecutor(min(self.streams, len(chunks))) as pool:
                    list(
                        pool.map(
                            lambda chunk: self._send_chunk_on_own_channel(connection, local, temporary, *chunk), chunks
                        )
                    )
            sftp.chmod(temporary, 0o444)
            sftp.posix_rename(temporary, remote)
        except BaseException:
            try:
                sftp.remove(temporary)
            except OSError:
                pass
            raise
        finally:
            sftp.close()
        return size

    def _send_chunk_on_own_channel(
        self, connection: HostConnection, local: str, remote: str, offset: int, length: int
    ) -> None:
        sftp = connection.sftp()
        try:
            self._send_chunk(sftp, local, remote, offset, length)
        finally:
            sftp.close()

    @staticmethod
    def _send_chunk(sftp, local: str, remote: str, offset: int, length: int) -> None:
        with open(local, "rb") as source, sftp.open(remote, "r+b") as target:
            target.set_pipelined(True)
            source.seek(offset)
            target.seek(offset)
            left = length
            while left > 0:
                block = source.read(min(READ_BYTES, left))
                if not block:
                    break
                target.write(block)
                left -= len(block)

    # -- down ------------------------------------------------------------------------------

    def collect(self, connection: HostConnection, remote: str, local: str) -> Transfer:
        """Copies files under `remote` that are new, or newer than `local`'s, into `local`.

        Newer, not just different: several hosts may hold copies of one output directory (each
        got it staged in), and a host's untouched old copy must not undo another host's update."""
        transfer = Transfer()
        listing = connection.run(f"cd {shlex.quote(remote)} 2>/dev/null && find . -type f -printf '%s %T@ %P\\n'")
        if listing[0] != 0:
            return transfer
        wanted = []
        for line in listing[1].splitlines():
            size_text, mtime_text, relative = line.split(" ", 2)
            size, mtime = int(size_text), float(mtime_text)
            path = os.path.join(local, relative)
            try:
                info = os.stat(path)
                if info.st_mtime >= mtime - 0.001:
                    continue
            except FileNotFoundError:
                pass
            wanted.append((relative, size, mtime))
        if not wanted:
            return transfer
        sftp = connection.sftp()
        try:
            for relative, size, mtime in wanted:
                path = os.path.join(local, relative)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                temporary = f"{path}.part-{uuid.uuid4().hex[:8]}"
                try:
                    sftp.get(f"{remote}/{relative}", temporary, prefetch=True)
                except FileNotFoundError:  # removed by the job meanwhile
                    continue
                os.utime(temporary, (mtime, mtime))
                os.replace(temporary, path)
                transfer.files += 1
                transfer.bytes_received += size
        finally:
            sftp.close()
        return transfer


def remote_size(sftp, path: str) -> int | None:
    try:
        info = sftp.stat(path)
    except FileNotFoundError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode or 0) else None
