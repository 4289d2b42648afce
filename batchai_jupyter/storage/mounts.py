"""Batch AI `mountVolumes`, resolved to datastores so that an old job.json runs unchanged.

Each entry becomes a directory at `<mount root>/<relativeMountPath>` on the node:

- `azureBlobFileSystems` {accountName, containerName}: the Blob datastore registered for that account
  and container (its local mirror, staged in before the job and flushed out after it); with none
  registered, a local directory datastore named after the container, created on first use.
- `azureFileShares` {azureFileUrl .../<share>}: the datastore registered for that account and share
  name, else a local directory datastore named after the share.
- `fileServers` {fileServer: {id .../<name>}, sourceDirectory}: the local datastore (a shared path,
  `batchai file-server create`) of that name, optionally a directory inside it.
- `unmanagedFileSystems` {mountCommand}: the command, run on the node with the mount path appended.

A mount that is not what the job asked for (a local directory standing in for a share) says so in
its `note`, which the job's execution log repeats.

On a cluster with `nativeMounts: true`, a container or share with credentials also carries a
`native` mount (storage/native_mounts.py): a node with the tool mounts the storage itself, and the
staged copy or directory above is only the fallback for a node without it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import posixpath
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import BatchAIError
from ..ports.compute import task_base_env
from ..ports.datastores import Datastore, DatastoreRef, clean_relative_path, entry_credentials, given_key
from .native_mounts import (
    MOUNT_SAS_MINUTES,
    MountableContainer,
    NativeMount,
    blob_native_mount,
    smb_native_mount,
)
from .staging import Mirrored

# How often a running mount command is checked for its job having ended.
CANCEL_CHECK_SECONDS = 0.2


@dataclass(frozen=True)
class Mount:
    relative_path: str  # under $AZ_BATCHAI_MOUNT_ROOT or $AZ_BATCHAI_JOB_MOUNT_ROOT
    source: str = ""  # the directory on this machine the mount shows ("" for a mount command)
    sync: object | None = None  # the MirrorSync of a staged datastore
    command: str = ""  # an unmanagedFileSystems mountCommand
    note: str = ""
    native: NativeMount | None = None  # the real mount a node with the tool makes instead
    datastore: str = ""  # the registered datastore the mount shows ("" for a mount command)
    inside: str = ""  # the folder of that datastore at the mount's root ("" its top)

    def stage(self) -> None:
        """Brings the staged copy up to date (a mount shows the whole container; unchanged files are not
        fetched)."""
        if self.sync is not None:
            self.sync.stage_in("")


def _smb_native(url: str, account: str, where: str, key: str) -> NativeMount | None:
    return smb_native_mount(url, account, key, where) if key else None


@dataclass
class MountResolver:
    """Turns a mountVolumes block into Mounts, for one workspace's registered datastores."""

    datastores: Callable[[], list[DatastoreRef]]  # the workspace's registered datastores
    open_datastore: Callable[[str], Datastore]  # by name
    create_local_datastore: Callable[[str], DatastoreRef]  # by name: registers home/datastores/<ws>/<name>
    native: bool = False  # the cluster asks for real mounts where its nodes can make them

    def resolve(self, volumes: dict | None) -> list[Mount]:
        volumes = volumes or {}
        mounts = []
        for index, entry in enumerate(volumes.get("azureBlobFileSystems") or []):
            where = f"mountVolumes.azureBlobFileSystems[{index}]"
            account, container = entry.get("accountName", ""), entry.get("containerName", "")
            mount, row = self._storage_mount(where, entry, account, container, "container")
            mounts.append(
                self._with_native(mount, functools.partial(self._blob_native, row, account, container), entry, account)
            )
        for index, entry in enumerate(volumes.get("azureFileShares") or []):
            where = f"mountVolumes.azureFileShares[{index}]"
            url = str(entry.get("azureFileUrl") or "")
            share = url.rstrip("/").rsplit("/", 1)[-1] if "/" in url else ""
            account = entry.get("accountName") or url.split("//", 1)[-1].split(".", 1)[0]
            mount, _row = self._storage_mount(where, entry, account, share, "share")
            mounts.append(self._with_native(mount, functools.partial(_smb_native, url, account, where), entry, account))
        for index, entry in enumerate(volumes.get("fileServers") or []):
            mounts.append(self._file_server_mount(f"mountVolumes.fileServers[{index}]", entry))
        for index, entry in enumerate(volumes.get("unmanagedFileSystems") or []):
            where = f"mountVolumes.unmanagedFileSystems[{index}]"
            command = entry.get("mountCommand")
            if not isinstance(command, str) or not command.strip():
                raise BatchAIError(
                    "InvalidMount",
                    f"{where}.mountCommand: give the command that mounts the file "
                    "system (the mount path is appended to it)",
                )
            mounts.append(Mount(_relative(where, entry), command=command))
        return mounts

    def _storage_mount(
        self, where: str, entry: dict, account: str, container: str, what: str
    ) -> tuple[Mount, DatastoreRef | None]:
        """The mount of a container or share, and the registered datastore row it resolved to (None: a
        local directory stands in)."""
        relative = _relative(where, entry)
        if not container:
            raise BatchAIError("InvalidMount", f"{where}: name the {what} to mount")
        for row in self.datastores():
            config = row.config
            if (
                row.kind != "local"
                and config.get("container") == container
                and (not account or config.get("account_name") in (account, None, ""))
            ):
                store = self.open_datastore(row.name)
                return Mount(
                    relative,
                    store.node_path(""),
                    store.sync if isinstance(store, Mirrored) else None,
                    note=f"{what} {container!r} of account {account!r}: datastore {row.name!r}",
                    datastore=row.name,
                ), row
        name = _local_name(container)
        row = next((r for r in self.datastores() if r.name == name and r.kind == "local"), None)
        if row is None:
            row = self.create_local_datastore(name)
        return Mount(
            relative,
            row.config["path"],
            note=(
                f"{what} {container!r} of account {account!r}: no datastore is registered for it here, so it is the "
                f"local directory datastore {name!r} (datastore://{name}/)"
            ),
            datastore=name,
        ), None

    def _with_native(self, mount: Mount, make: Callable[[str], NativeMount | None], entry: dict, account: str) -> Mount:
        """`mount` with its native mount, when the cluster asks and there are credentials to make one.
        `make(account key)` builds it (the key: the entry's own, else a registered datastore's on the account)."""
        if not self.native:
            return mount
        native = make(_entry_key(entry) or self._account_key(account))
        if native is None:
            return dataclasses.replace(
                mount, note=mount.note + "; there are no credentials here to mount it on the nodes, so they get a copy"
            )
        return dataclasses.replace(mount, native=native)

    def _blob_native(self, row: DatastoreRef | None, account: str, container: str, key: str) -> NativeMount | None:
        if row is not None:
            store = self.open_datastore(row.name)
            url = store.container_url(MOUNT_SAS_MINUTES) if isinstance(store, MountableContainer) else None
        elif key and account:
            from .blob import container_sas_url

            url = container_sas_url(
                account, key, f"https://{account}.blob.core.windows.net", container, MOUNT_SAS_MINUTES
            )
        else:
            url = None
        return blob_native_mount(container, url) if url else None

    def _account_key(self, account: str) -> str:
        """The key of a registered datastore on `account` (a share of an account whose Blob is registered)."""
        for row in self.datastores():
            if account and row.kind != "local" and row.config.get("account_name") == account:
                store = self.open_datastore(row.name)
                key = store.account_key() if isinstance(store, MountableContainer) else ""
                if key:
                    return key
        return ""

    def _file_server_mount(self, where: str, entry: dict) -> Mount:
        relative = _relative(where, entry)
        server = entry.get("fileServer") or {}
        identity = str(server.get("id") if isinstance(server, dict) else server or "")
        name = identity.rstrip("/").rsplit("/", 1)[-1]
        row = next((r for r in self.datastores() if r.name == name and r.kind == "local"), None)
        if row is None:
            raise BatchAIError(
                "FileServerNotFound",
                f"{where}.fileServer.id: no file server {name!r} is registered; "
                f"register it with `batchai file-server create -n {name} "
                "--path <shared directory>`",
            )
        source = row.config["path"]
        inside = clean_relative_path(str(entry.get("sourceDirectory") or "").lstrip("/"), f"{where}.sourceDirectory")
        return Mount(
            relative,
            os.path.join(source, inside) if inside else source,
            note=f"file server {name!r}: {source}",
            datastore=name,
            inside=inside,
        )


def _relative(where: str, entry: dict) -> str:
    path = entry.get("relativeMountPath")
    if not isinstance(path, str) or not path:
        raise BatchAIError("InvalidMount", f"{where}.relativeMountPath: give the directory name under the mount root")
    return clean_relative_path(path, f"{where}.relativeMountPath")


def _entry_key(entry: dict) -> str:
    credentials = entry_credentials(entry)[1]
    return given_key(credentials.get("accountKey") if isinstance(credentials, dict) else None)


def _local_name(container: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in container)[:63] or "share"


def link_mount(mount_root: str, mount: Mount) -> str:
    """Makes `<mount_root>/<relative path>` show the mount's source (a symlink; idempotent)."""
    path = os.path.join(mount_root, mount.relative_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if mount.source:
        os.makedirs(mount.source, exist_ok=True)
        if os.path.islink(path):
            if os.readlink(path) == mount.source:
                return path
            os.unlink(path)
        elif os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)
        os.symlink(mount.source, path)
    else:
        os.makedirs(path, exist_ok=True)
    return path


def mount_command(mount_root: str, mount: Mount) -> str:
    """The shell line that mounts an unmanagedFileSystems entry on the node."""
    return f"{mount.command} {shlex.quote(posixpath.join(mount_root, mount.relative_path))}"


def run_mount_command(
    mount_root: str, mount: Mount, cancelled: threading.Event | None = None, timeout: float = 300.0
) -> str:
    """Runs an unmanagedFileSystems mountCommand (on a node that is this machine) with a task's clean
    environment, never the service's own (its token, its keys). Outside the node's sandbox: a mount made
    in a sandbox's private mount namespace would be gone with it, unseen by the job's tasks. The command
    and all it started are killed at `timeout` or when `cancelled` is set (its job ended). Returns a note
    for the execution log: the command's outcome and the end of what it printed."""
    path = os.path.join(mount_root, mount.relative_path)
    os.makedirs(path, exist_ok=True)
    line = mount_command(mount_root, mount)
    env = task_base_env(os.environ)
    with subprocess.Popen(
        ["/bin/bash", "-c", line],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: what it started goes with it
    ) as process:
        deadline = time.monotonic() + timeout
        while True:
            try:
                stdout, stderr = process.communicate(timeout=CANCEL_CHECK_SECONDS)
                break
            except subprocess.TimeoutExpired:
                why = "its job ended" if cancelled is not None and cancelled.is_set() else ""
                why = why or (f"it did not finish within {timeout:.0f}s" if time.monotonic() > deadline else "")
                if why:
                    _kill_group(process)
                    raise BatchAIError("MountFailed", f"mountCommand {mount.command!r} was stopped: {why}") from None
    if process.returncode != 0:
        tail = (stderr or stdout).strip().splitlines()[-1:] or [""]
        raise BatchAIError(
            "MountFailed",
            f"mountCommand {mount.command!r} exited with code {process.returncode} "
            f"({tail[0][:200]}); fix the command or the file system it mounts",
        )
    printed = "\n".join((stdout + stderr).strip().splitlines()[-5:])[-500:]
    return f"mountCommand {mount.command!r} exited with code 0" + (f":\n{printed}" if printed else "")


def local_datastore_creator(store, layout, workspace: str) -> Callable[[str], DatastoreRef]:
    """Registers (once) a local directory datastore standing in for a share that is not reachable here."""

    def create(name: str) -> DatastoreRef:
        path = layout.local_datastore(workspace, name)
        os.makedirs(path, exist_ok=True)
        with store.transaction():
            if not store.query_one("SELECT 1 FROM datastores WHERE workspace = ? AND name = ?", workspace, name):
                store.insert(
                    "datastores",
                    workspace=workspace,
                    name=name,
                    kind="local",
                    config={"path": path},
                    created=time.time(),
                )
        return store.datastore_row(workspace, name)

    return create


def _kill_group(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()
