"""A datastore that is a directory on this machine (or a shared path every node mounts the same)."""

from __future__ import annotations

import os
import shutil

from ..errors import BatchAIError
from ..ports.datastores import Datastore, DatastoreContext, DeletesFiles, FileEntry, clean_relative_path

SYSTEM_TREES = ("/proc", "/sys", "/dev")


def _real_below(root: str, relative: str) -> str:
    """os.path.realpath(root/relative) for a `root` that is real and a normalised `relative`: only the
    names under the root are looked at (realpath walks every name from /), and only until a link."""
    path = root
    for name in relative.split("/") if relative else ():
        path = os.path.join(path, name)
        if os.path.islink(path):
            return os.path.realpath(os.path.join(root, relative))
    return path


class LocalDatastore(Datastore, DeletesFiles):
    kind = "local"

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self._real_root = ""

    def _resolve(self, segment: str) -> str:
        relative = clean_relative_path(segment)
        root = self._root_resolved()
        full = _real_below(root, relative)
        if full != root and not full.startswith(root + os.sep):
            raise BatchAIError("InvalidPath", f"path {segment!r} leads outside the datastore (a symlink?)")
        return full

    def _root_resolved(self) -> str:
        """The root with its links resolved, once it exists (every job start resolves several paths under it)."""
        if self._real_root:
            return self._real_root
        root = os.path.realpath(self.root)
        if os.path.isdir(root):
            self._real_root = root
        return root

    def node_path(self, segment: str) -> str:
        return self._resolve(segment)

    def delete(self, segment: str) -> int:
        path = self._resolve(segment)
        if path == self._root_resolved():
            raise BatchAIError("InvalidPath", "the datastore's root itself cannot be deleted")
        if os.path.isdir(path) and not os.path.islink(path):
            count = sum(len(files) for _, _, files in os.walk(path))
            shutil.rmtree(path)
            return count
        if os.path.lexists(path):
            os.remove(path)
            return 1
        return 0

    def exists(self, segment: str) -> bool:
        return os.path.exists(self._resolve(segment))

    def list(self, segment: str) -> list[FileEntry]:
        directory = self._resolve(segment)
        if not os.path.isdir(directory):
            return []
        entries = []
        with os.scandir(directory) as scan:
            for entry in sorted(scan, key=lambda e: e.name):
                try:
                    stat = entry.stat(follow_symlinks=False)  # a link may point anywhere: never follow it
                except FileNotFoundError:
                    continue  # removed while listing
                if entry.is_symlink():
                    entries.append(FileEntry(entry.name, "link", None, stat.st_mtime))
                elif entry.is_dir(follow_symlinks=False):
                    entries.append(FileEntry(entry.name, "directory", None, None))
                else:
                    entries.append(FileEntry(entry.name, "file", stat.st_size, stat.st_mtime))
        return entries

    def read(self, segment: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._resolve(segment)
        if not os.path.isfile(path):
            raise BatchAIError("FileNotFound", f"file {segment!r} does not exist (yet)", status=404)
        with open(path, "rb") as handle:
            left = os.fstat(handle.fileno()).st_size - offset
            if left <= 0:
                return b""  # past the end (a seek there may be refused by the file system)
            handle.seek(offset)
            return handle.read() if length is None else handle.read(min(length, left))


def create(config: dict, context: DatastoreContext) -> LocalDatastore:
    root, home = os.path.realpath(config["path"]), os.path.realpath(context.home)
    if home == root or home.startswith(root.rstrip(os.sep) + os.sep):
        # Its files would include the service's store, with every job's secrets, for anyone with the API.
        raise BatchAIError(
            "DatastoreContainsHome",
            f"path: {config['path']!r} holds the service's home {home}; register a directory outside it",
        )
    if any(root == system or root.startswith(system + os.sep) for system in SYSTEM_TREES):
        # Not files but the kernel's view of processes and devices: the service's own environment among them.
        raise BatchAIError(
            "InvalidDatastore",
            f"path: {config['path']!r} is inside {', '.join(SYSTEM_TREES)}; register a directory of files",
        )
    return LocalDatastore(config["path"])
