"""What the core asks of a datastore: every datastore is a `Datastore` (paths for nodes, listings and
ranged reads); the optional capabilities below are declared by inheriting them and checked with
`isinstance`. `DatastoreKinds` opens datastores and reads their documents; `JobStorage` moves a job's
data (staging in, mounts, flushing out) for the core. storage/ implements all three.
"""

from __future__ import annotations

import posixpath
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import BatchAIError
from .compute import ClusterRef, NodeScript
from .layout import HomeLayout


@dataclass(frozen=True)
class DatastoreContext:
    """What a datastore factory is given besides its own stored configuration."""

    home: str  # the service's BATCHAI_HOME (for caches and local mount points)


@dataclass(frozen=True)
class FileEntry:
    name: str
    file_type: str  # "file" | "directory" | "link" (shown as itself, never followed)
    size: int | None
    modified: float | None


# File systems refuse names over 255 bytes; an upload's partial file adds a suffix to the name.
MAX_NAME_BYTES = 200
MAX_PATH_BYTES = 1024


def clean_relative_path(path: str, where: str = "path") -> str:
    """A user-given path inside a datastore, normalised; refuses anything that would leave the root."""
    text = (path or ".").replace("\\", "/")
    normal = posixpath.normpath(text)
    if text.startswith("/") or normal == ".." or normal.startswith("../"):
        raise BatchAIError(
            "InvalidPath", f"{where}: {path!r} points outside the datastore; give a path relative to it, without '..'"
        )
    if "\0" in text:
        raise BatchAIError("InvalidPath", f"{where}: a path cannot hold a NUL character")
    try:
        encoded = normal.encode()
    except UnicodeEncodeError:
        raise BatchAIError("InvalidPath", f"{where}: {path!r} is not valid Unicode (a lone surrogate?)") from None
    if len(encoded) > MAX_PATH_BYTES:
        raise BatchAIError("InvalidPath", f"{where}: {len(encoded)} bytes long; at most {MAX_PATH_BYTES}")
    for name in normal.split("/"):
        if len(name.encode()) > MAX_NAME_BYTES:
            raise BatchAIError(
                "InvalidPath",
                f"{where}: the name {name[:40]!r}... is {len(name.encode())} bytes "
                f"long; a file or directory name may be at most {MAX_NAME_BYTES}",
            )
    return "" if normal == "." else normal


class Datastore(ABC):
    kind: str

    def close(self) -> None:  # noqa: B027 (a local directory holds nothing to close)
        """Closes the datastore's connections, once, when the service stops."""

    @abstractmethod
    def node_path(self, segment: str) -> str:
        """An absolute directory for `segment` that local-backend nodes read and write directly."""

    @abstractmethod
    def list(self, segment: str) -> list[FileEntry]:
        """Entries directly inside `segment`; [] when it does not exist yet."""

    @abstractmethod
    def read(self, segment: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes of a file from `offset`; b"" past its end."""

    @abstractmethod
    def exists(self, segment: str) -> bool: ...


class ChunkedUploads(ABC):
    """Takes client uploads chunk by chunk itself (staging blocks remotely), committing on the final one."""

    @abstractmethod
    def remote_file(self, segment: str) -> tuple[int, str | None] | None:
        """(size, SHA-256 recorded at upload or None) of a stored file; None when there is none."""

    @abstractmethod
    def uploaded_size(self, segment: str) -> int:
        """Bytes of the upload in progress to `segment` received so far."""

    @abstractmethod
    def write_chunk(self, segment: str, data: bytes, offset: int, final: bool, sha256: str | None) -> None: ...


class TransferCounter(Protocol):
    def add(self, sent: int = 0, skipped: int = 0, received: int = 0, reused: int = 0) -> None: ...


class CountsTransfers(ABC):
    """Counts the bytes it moves (shown on the datastore's view)."""

    counters: TransferCounter

    @abstractmethod
    def transfers(self) -> dict[str, Any]:
        """The counters so far, for the datastore's view."""


class DeletesFiles(ABC):
    """Can delete a file or a whole folder (a deleted job's files, to free space)."""

    @abstractmethod
    def delete(self, segment: str) -> int:
        """Deletes the file or folder at `segment`; returns how many files went."""


class CreatesContainer(ABC):
    """Can create its container when asked to at registration (`createContainer`)."""

    @abstractmethod
    def create_container(self) -> None: ...


class Checkable(ABC):
    """Can be checked at registration, so a wrong key or a missing container is refused then."""

    @abstractmethod
    def check(self) -> None:
        """Raises BatchAIError saying what is wrong."""


class PublicSettings(ABC):
    """Has settings worth showing that are not in its stored configuration (a connection string's account)."""

    @abstractmethod
    def public_settings(self) -> dict[str, Any]: ...


class DownloadLinks(ABC):
    """Gives links to its files that work without this service (Blob SAS)."""

    @abstractmethod
    def download_url(self, segment: str, expiry_minutes: int | None = None) -> str | None: ...


class JobSpecRef(Protocol):
    @property
    def mount_volumes(self) -> dict[str, Any] | None: ...


class JobRef(Protocol):
    """What JobStorage reads of a job: the core's Job record (core/records.py) fits it."""

    @property
    def workspace(self) -> str: ...

    @property
    def experiment(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def uuid(self) -> str: ...

    @property
    def segment(self) -> str: ...

    @property
    def cluster(self) -> str: ...

    @property
    def spec(self) -> JobSpecRef: ...


class DatastoreRef(Protocol):
    """A registered datastore as storage sees it: the core's DatastoreRow record fits it."""

    @property
    def workspace(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def config(self) -> dict[str, Any]: ...

    @property
    def secrets(self) -> dict[str, str]: ...


class JobStorage(ABC):
    """A job's data beyond the nodes' own disks, for the core: inputs staged in, mounts shown on nodes,
    logs and outputs flushed out. Node lists are core.launch.NodeContext values."""

    @abstractmethod
    def run_here(self, script: str, stdin: str) -> tuple[int, str]:
        """Runs a storage script on this host: what nodes that share the service's files get."""

    @abstractmethod
    def show_cluster_mounts(
        self,
        cluster: ClusterRef,
        node_name: str,
        mount_root: str,
        remote: bool,
        show: Callable[[str, list[Any]], None] | None = None,
        run: NodeScript | None = None,
    ) -> list[str]: ...

    @abstractmethod
    def flush_folder(self, workspace: str, folder: str, datastore: str | None = None) -> None:
        """Copies a finished folder out of a datastore's mirror (None: the default datastore)."""

    @abstractmethod
    def prepare(
        self,
        job: JobRef,
        input_paths: list[str],
        nodes: list[Any],
        remote: bool,
        show: Callable[[int], Callable[[str, list[Any]], None]] | None = None,
        run: Callable[[int], NodeScript] | None = None,
        cancelled: threading.Event | None = None,  # set: a mount command still running here is killed
    ) -> list[str]: ...

    @abstractmethod
    def mount_place(self, job: JobRef, path: str) -> tuple[str, str] | None:
        """(datastore name, path inside it) that `path`, a node path starting with $AZ_BATCHAI_MOUNT_ROOT or
        $AZ_BATCHAI_JOB_MOUNT_ROOT, shows through one of the job's mounts; None when no mount of a datastore
        holds it."""

    @abstractmethod
    def mounts_are_native(self, job: JobRef) -> list[bool]: ...

    def mount_sources(self, job: JobRef) -> list[str]:
        """The directories of this machine that the job's and its cluster's linked mounts show."""
        return []

    def runs_mount_commands(self, job: JobRef) -> bool:
        """Whether preparing the job runs a mountCommand (of the job or its cluster), which may take minutes."""
        return False

    def cluster_mount_sources(self, cluster: ClusterRef) -> list[str]:
        """The same for a cluster's mounts alone (its setup task)."""
        return []

    @abstractmethod
    def unmount_job(self, nodes: list[Any], run: Callable[[int], NodeScript]) -> list[dict[str, Any]]: ...

    @abstractmethod
    def flush(self, job: JobRef, final: bool) -> list[dict[str, Any]]: ...


class DatastoreKinds(ABC):
    """The datastore kinds this service can open, their request documents and views."""

    @abstractmethod
    def open(self, kind: str, config: dict[str, Any], context: DatastoreContext) -> Datastore:
        """`config` includes the secrets: never log it."""

    @abstractmethod
    def parse_document(self, document: object) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(kind, config, secrets) of a create request, or a BatchAIError naming the field at fault."""

    @abstractmethod
    def view(self, row: DatastoreRef, transfers: dict[str, Any] | None = None) -> dict[str, Any]:
        """The API's view of a registered datastore, without secrets."""

    @abstractmethod
    def job_storage(self, store: Any, layout: HomeLayout, datastore_for: Callable[..., Datastore]) -> JobStorage:
        """`store` is the core's Store; `datastore_for(workspace[, name])` opens a workspace's datastore."""


CREDENTIAL_KEYS = ("credentials", "credentialsInfo")
MASKED = "***"  # what the API returns in place of a key or password


def entry_credentials(entry: dict[str, Any]) -> tuple[str, Any]:
    """(key, value) of a mountVolumes entry's credentials: `credentials`, or `credentialsInfo` as 2017-09 and
    2018-03 files call it."""
    for key in CREDENTIAL_KEYS:
        if entry.get(key) is not None:
            return key, entry[key]
    return CREDENTIAL_KEYS[0], None


def given_key(value: Any) -> str:
    """A key the user really gave: not a `<PLACEHOLDER>` of a recipe nor the *** of a body read back from GET
    (those mount the datastore registered for the account, with its own credentials)."""
    return value if isinstance(value, str) and not value.startswith("<") and value != MASKED else ""
