"""Writing files into a datastore from a client: what the notebook's `--data` and cell packages use.

Uploads are content-addressed by the client (it picks paths that contain a digest of the content),
so "a file of that size is already at that path" means "already uploaded": `missing()` answers which
files still have to be sent. A file arrives in chunks (`offset`), goes to a `.upload` part file, and
only the final chunk (optionally checked against its SHA-256) renames it into place, so a half-sent
file is never mistaken for a whole one. `write()` reports the bytes it actually wrote.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from ..errors import BatchAIError
from ..ports.datastores import ChunkedUploads, CountsTransfers, Datastore, clean_relative_path

PART_SUFFIX = ".upload"
MAX_FILES_PER_CHECK = 100_000


def _upload_path(path: str) -> str:
    relative = clean_relative_path(path, "path")
    if not relative or relative.endswith(PART_SUFFIX):
        raise BatchAIError(
            "InvalidPath",
            f"path: {path!r} is not a file path to upload to; give a relative file path inside the datastore",
        )
    return relative


def _local_file(datastore: Datastore, path: str) -> str:
    """The local file a datastore path names; only datastores that are directories here take uploads."""
    if datastore.kind != "local":
        raise BatchAIError(
            "UploadNotSupported",
            f"datastore kind {datastore.kind!r} does not take uploads through "
            "the service; upload with that storage's own tools",
        )
    return datastore.node_path(_upload_path(path))


def missing(datastore: Datastore, files: object) -> list[str]:
    """The paths of `files` ([{"path", "size", "sha256"?}]) that the datastore does not hold at that size
    (and, when given, with that SHA-256: what an upload with `sha256` recorded)."""
    if not isinstance(files, list) or len(files) > MAX_FILES_PER_CHECK:
        raise BatchAIError(
            "InvalidArgument",
            f'files: give a list of at most {MAX_FILES_PER_CHECK} {{"path": ..., "size": ...}} objects',
        )
    absent = []
    for position, entry in enumerate(files):
        if not (isinstance(entry, dict) and isinstance(entry.get("path"), str) and isinstance(entry.get("size"), int)):
            raise BatchAIError(
                "InvalidArgument",
                f'files[{position}]: {entry!r} is not valid; give {{"path": "<relative path>", "size": <bytes>}}',
            )
        digest = entry.get("sha256")
        if digest is not None and not isinstance(digest, str):
            raise BatchAIError("InvalidArgument", f"files[{position}].sha256: give the file's SHA-256 as hex")
        if isinstance(datastore, ChunkedUploads):  # remote datastores (Blob) stage chunks themselves
            held = datastore.remote_file(_upload_path(entry["path"]))
            present = held is not None and held[0] == entry["size"] and (digest is None or held[1] == digest.lower())
        else:
            target = _local_file(datastore, entry["path"])
            present = (
                os.path.isfile(target)
                and os.path.getsize(target) == entry["size"]
                and (digest is None or _sha256_of(target) == digest.lower())
            )
        if present and isinstance(datastore, CountsTransfers):
            datastore.counters.add(skipped=entry["size"])
        elif not present:
            absent.append(entry["path"])
    return absent


def write(
    datastore: Datastore, path: str, data: bytes, offset: int = 0, final: bool = True, sha256: str | None = None
) -> dict[str, Any]:
    """Writes `data` at `offset` of the file being uploaded to `path`; the final chunk puts it in place."""
    if isinstance(datastore, ChunkedUploads):
        relative = _upload_path(path)
        have = datastore.uploaded_size(relative)
        if offset not in (0, have):
            raise BatchAIError(
                "UploadOffsetMismatch",
                f"offset: {offset} does not continue the upload of {path!r} "
                f"({have} bytes received so far); resend from offset 0",
                409,
            )
        datastore.write_chunk(relative, data, offset, final, sha256)
        return {"path": relative, "bytesWritten": len(data), "complete": final}
    target = _local_file(datastore, path)
    part = target + PART_SUFFIX
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        have = os.path.getsize(part) if os.path.exists(part) else 0
        if offset not in (0, have):
            raise BatchAIError(
                "UploadOffsetMismatch",
                f"offset: {offset} does not continue the upload of {path!r} "
                f"({have} bytes received so far); resend from offset 0",
                409,
            )
        with open(part, "r+b" if offset else "wb") as handle:
            handle.seek(offset)
            handle.write(data)
            handle.truncate()
        if final:
            if sha256 is not None and _sha256_of(part) != sha256.lower():
                os.remove(part)
                raise BatchAIError(
                    "UploadCorrupted",
                    f"{path!r}: the received bytes do not match sha256 {sha256}; upload the file again",
                )
            os.replace(part, target)
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise BatchAIError(
            "PathConflict",
            f"path: {path!r} runs into what the datastore holds (a file where a "
            "folder is named, or a folder where the file would go); pick another "
            "path or delete what is there",
            409,
        ) from None
    return {"path": clean_relative_path(path), "bytesWritten": len(data), "complete": final}


def _sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
