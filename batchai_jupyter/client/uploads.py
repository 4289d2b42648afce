"""The one uploader: files into a datastore in chunks, each checked against its SHA-256, skipping what
the datastore already holds; and the matching chunked download."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import BatchAIError

if TYPE_CHECKING:
    from .api import Client

CHUNK_BYTES = 16 * 1024 * 1024  # under the service's request body limit
Progress = Callable[[int, int], None]  # (bytes sent, bytes to send)


@dataclass(frozen=True)
class UploadFile:
    """One file to upload: its path inside the upload, and its bytes (given) or a local file."""

    path: str
    local: str | None = None
    data: bytes | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else os.path.getsize(self._local())

    def _local(self) -> str:
        if self.local is None:
            raise ValueError(f"UploadFile {self.path!r}: give its data or a local file")
        return self.local

    def chunks(self) -> Iterator[bytes]:
        """At least one chunk (an empty file is one empty chunk)."""
        if self.data is not None:
            for start in range(0, max(len(self.data), 1), CHUNK_BYTES):
                yield self.data[start : start + CHUNK_BYTES]
            return
        with open(self._local(), "rb") as handle:
            first = True
            for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
                first = False
                yield block
            if first:
                yield b""

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for block in self.chunks():
            digest.update(block)
        return digest.hexdigest()


@dataclass
class UploadResult:
    files: int
    total_bytes: int
    bytes_sent: int = 0  # as counted by the datastore (bytesWritten)
    files_sent: list[str] = field(default_factory=list)  # paths inside the upload


def files_of(local_path: str, where: str) -> list[UploadFile]:
    """The files of a local file or folder, with paths relative to it (a file keeps its own name);
    `where` names the argument in the error for a path that does not exist."""
    full = os.path.abspath(os.path.expanduser(local_path))
    if os.path.isfile(full):
        return [UploadFile(os.path.basename(full), local=full)]
    if not os.path.isdir(full):
        raise BatchAIError(
            "FileNotFound",
            f"{where}: {local_path!r} does not exist; give a file or folder path (relative to {os.getcwd()})",
        )
    found = []
    for root, dirs, names in os.walk(full):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(names):
            path = os.path.join(root, name)
            if os.path.isfile(path):
                found.append(UploadFile(os.path.relpath(path, full).replace(os.sep, "/"), local=path))
    return found


def upload_files(
    client: Client,
    workspace: str,
    datastore: str,
    files: list[UploadFile],
    folder: str = "",
    *,
    hashes: dict[str, str] | None = None,
    compare_hashes: bool = False,
    progress: Progress | None = None,
) -> UploadResult:
    """Uploads `files` under `folder` of the datastore. The datastore is first asked which of them it does
    not hold at that size (and, with `compare_hashes`, with that SHA-256); only those are sent. `hashes`
    ({path: sha256}) saves hashing again what the caller hashed already."""
    hashes = dict(hashes or {})
    for item in files:
        if item.path not in hashes:
            hashes[item.path] = item.sha256()
    prefix = folder.strip("/")

    def target(item: UploadFile) -> str:
        return f"{prefix}/{item.path}" if prefix not in ("", ".") else item.path

    wanted = [
        {"path": target(f), "size": f.size, **({"sha256": hashes[f.path]} if compare_hashes else {})} for f in files
    ]
    absent = set(client.missing_datastore_files(workspace, datastore, wanted))
    to_send = [f for f in files if target(f) in absent]
    result = UploadResult(len(files), sum(f.size for f in files))
    total = sum(f.size for f in to_send)
    if progress:
        progress(0, total)
    for item in to_send:
        offset = 0
        chunks = item.chunks()
        chunk = next(chunks)
        while True:
            following = next(chunks, None)
            written = client.write_datastore_chunk(
                workspace, datastore, target(item), chunk, offset, final=following is None, sha256=hashes[item.path]
            )["bytesWritten"]
            offset += len(chunk)
            result.bytes_sent += written
            if progress:
                progress(result.bytes_sent, total)
            if following is None:
                break
            chunk = following
        result.files_sent.append(item.path)
    return result


def download_file(
    client: Client,
    workspace: str,
    datastore: str,
    path: str,
    target: str,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Downloads one datastore file by ranged reads into `target`, which appears only when it is whole."""
    partial = target + ".part"
    offset = 0
    with open(partial, "wb") as handle:
        while True:
            data = client.read_datastore_file(workspace, datastore, path, offset, CHUNK_BYTES)
            if not data:
                break
            handle.write(data)
            offset += len(data)
            if progress:
                progress(offset)
    os.replace(partial, target)
    return offset
