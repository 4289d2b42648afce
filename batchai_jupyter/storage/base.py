"""What every datastore offers the service: paths for nodes, listings and ranged reads."""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Protocol

from ..errors import BatchAIError


@dataclass(frozen=True)
class DatastoreContext:
    """What a datastore factory is given besides its own stored configuration."""

    home: str  # the service's BATCHAI_HOME (for caches and local mount points)


@dataclass(frozen=True)
class FileEntry:
    name: str
    file_type: str  # "file" | "directory"
    size: int | None
    modified: float | None


def clean_relative_path(path: str, where: str = "path") -> str:
    """A user-given path inside a datastore, normalised; refuses anything that would leave the root."""
    text = (path or ".").replace("\\", "/")
    normal = posixpath.normpath(text)
    if text.startswith("/") or normal == ".." or normal.startswith("../"):
        raise BatchAIError(
            "InvalidPath", f"{where}: {path!r} points outside the datastore; give a path relative to it, without '..'")
    return "" if normal == "." else normal


class Datastore(Protocol):
    kind: str

    def node_path(self, segment: str) -> str:
        """An absolute directory for `segment` that local-backend nodes read and write directly."""

    def list(self, segment: str) -> list[FileEntry]:
        """Entries directly inside `segment`; [] when it does not exist yet."""

    def read(self, segment: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes of a file from `offset`; b"" past its end."""

    def exists(self, segment: str) -> bool:
        ...
