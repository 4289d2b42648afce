"""Content-hashed uploads into a workspace datastore: `--data NAME=PATH` and cell packages.

A set of files goes to `<prefix>/<digest>/...`, where the digest covers every file's relative path
and SHA-256. The service is asked which files it does not hold yet (`missing`), and only those are
sent, in chunks, each checked against its hash: a second upload of the same data sends 0 bytes.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

import requests

from ..client import API, Client, _error_from
from ..errors import BatchAIError

CHUNK_BYTES = 16 * 1024 * 1024  # under the server's request body limit
DIGEST_LENGTH = 20
Progress = Callable[[int, int], None]  # (bytes sent, bytes to send)


@dataclass(frozen=True)
class UploadFile:
    """One file to upload: its path inside the upload, and its bytes (given) or a local file."""

    path: str
    local: str | None = None
    data: bytes | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else os.path.getsize(self.local)

    def chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            for start in range(0, max(len(self.data), 1), CHUNK_BYTES):
                yield self.data[start:start + CHUNK_BYTES]
            return
        with open(self.local, "rb") as handle:
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
class UploadReport:
    datastore_path: str  # the upload's folder inside the datastore
    node_path: str  # the same folder as nodes see it
    files: int
    total_bytes: int
    bytes_sent: int = 0  # as counted by the datastore (bytesWritten)
    files_sent: list[str] = field(default_factory=list)


def files_of(local_path: str, where: str) -> list[UploadFile]:
    """The files of a local file or folder, with paths relative to it (a file keeps its own name)."""
    full = os.path.abspath(os.path.expanduser(local_path))
    if os.path.isfile(full):
        return [UploadFile(os.path.basename(full), local=full)]
    if not os.path.isdir(full):
        raise BatchAIError("FileNotFound", f"{where}: {local_path!r} does not exist; give a file or folder path "
                                           f"(relative to {os.getcwd()})")
    found = []
    for root, dirs, names in os.walk(full):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(names):
            path = os.path.join(root, name)
            if os.path.isfile(path):
                found.append(UploadFile(os.path.relpath(path, full).replace(os.sep, "/"), local=path))
    return found


def tree_digest(files: list[UploadFile]) -> tuple[str, dict[str, str]]:
    """(digest of the whole set, {path: sha256})."""
    hashes = {f.path: f.sha256() for f in files}
    digest = hashlib.sha256()
    for path in sorted(hashes):
        digest.update(f"{path}\0{hashes[path]}\n".encode())
    return digest.hexdigest()[:DIGEST_LENGTH], hashes


def datastore_root(client: Client, workspace: str, datastore: str) -> str:
    """Where nodes see the datastore's root (a local datastore's directory)."""
    for entry in client.list(f"workspaces/{quote(workspace, safe='')}/datastores"):
        if entry["name"] == datastore:
            if not entry.get("path"):
                raise BatchAIError("UploadNotSupported", f"datastore '{datastore}' ({entry.get('kind')}) has no "
                                                         "path nodes can read uploads from; use a local datastore")
            return entry["path"]
    raise BatchAIError("DatastoreNotFound", f"datastore '{datastore}' not found in workspace '{workspace}'; "
                                            "list them with `batchai datastore list`")


def upload(client: Client, workspace: str, prefix: str, files: list[UploadFile], datastore: str = "default",
           progress: Progress | None = None) -> UploadReport:
    """Uploads `files` under `<prefix>/<digest>/` unless the datastore holds them already."""
    digest, hashes = tree_digest(files)
    folder = f"{prefix}/{digest}"
    base = f"workspaces/{quote(workspace, safe='')}/datastores/{quote(datastore, safe='')}"
    report = UploadReport(folder, f"{datastore_root(client, workspace, datastore)}/{folder}", len(files),
                          sum(f.size for f in files))
    wanted = [{"path": f"{folder}/{f.path}", "size": f.size} for f in files]
    missing = set(client.request("POST", f"{base}/missing", json_body={"files": wanted})["missing"])
    to_send = [f for f in files if f"{folder}/{f.path}" in missing]
    total = sum(f.size for f in to_send)
    if progress:
        progress(0, total)
    for item in to_send:
        offset = 0
        for chunk, last in _with_last(item.chunks()):
            written = _put(client, f"{base}/files/content", chunk, {
                "path": f"{folder}/{item.path}", "offset": offset, "final": "true" if last else "false",
                "sha256": hashes[item.path]})["bytesWritten"]
            offset += written
            report.bytes_sent += written
            if progress:
                progress(report.bytes_sent, total)
        report.files_sent.append(item.path)
    return report


def _put(client: Client, path: str, data: bytes, params: dict) -> dict:
    """PUT raw bytes (Client.request sends JSON only)."""
    try:
        response = client.session.put(f"{client.url}{API}/{path}", params=params, data=data, timeout=client.timeout)
    except requests.ConnectionError:
        raise BatchAIError("ServiceUnreachable", f"cannot reach the batchai service at {client.url}",
                           status=503) from None
    if response.status_code >= 400:
        raise _error_from(response)
    return response.json()


def _with_last(chunks: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    previous = next(chunks)
    for chunk in chunks:
        yield previous, False
        previous = chunk
    yield previous, True
