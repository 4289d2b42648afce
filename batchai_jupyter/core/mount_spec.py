"""The shape of a `mountVolumes` block, checked when a job or cluster is submitted (storage resolves it to
datastores only when the job starts, which is too late to say that it is wrong)."""

from __future__ import annotations

import re
from typing import Any

from ..errors import SpecError
from ..ports.datastores import clean_relative_path, entry_credentials

# Azure's rule for containers and shares; a local directory datastore is named after them.
_CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_KINDS = ("azureBlobFileSystems", "azureFileShares", "fileServers", "unmanagedFileSystems")
_HIDDEN = "<hidden>"


def check_mount_volumes(block: Any, path: str) -> None:
    """SpecError naming the first entry of `block` (a mountVolumes object) that no job could mount."""
    if not isinstance(block, dict):
        raise SpecError(path, block, "an object with " + ", ".join(_KINDS))
    seen: dict[str, str] = {}
    for kind in _KINDS:
        entries = block.get(kind)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise SpecError(f"{path}.{kind}", entries, "a list of objects")
        for index, entry in enumerate(entries):
            where = f"{path}.{kind}[{index}]"
            if not isinstance(entry, dict):
                raise SpecError(where, entry, "an object")
            relative = _mount_path(entry, where)
            if relative in seen:
                raise SpecError(f"{where}.relativeMountPath", relative, f"a path not used already by {seen[relative]}")
            seen[relative] = where
            _CHECKS[kind](entry, where)
            _check_credentials(entry, where)


def _mount_path(entry: dict[str, Any], where: str) -> str:
    value = entry.get("relativeMountPath")
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}.relativeMountPath", value, "the directory name under the mount root")
    relative = clean_relative_path(value, f"{where}.relativeMountPath")
    if not relative:
        raise SpecError(f"{where}.relativeMountPath", value, "a directory under the mount root, not the root")
    return relative


def _container(entry: dict[str, Any], where: str) -> None:
    name = entry.get("containerName")
    if not isinstance(name, str) or not _CONTAINER_NAME.match(name):
        raise SpecError(
            f"{where}.containerName", name, "a container name: 3-63 lower-case letters, digits and single hyphens"
        )
    _optional_text(entry, "accountName", where)


def _share(entry: dict[str, Any], where: str) -> None:
    url = entry.get("azureFileUrl")
    share = url.rstrip("/").rsplit("/", 1)[-1] if isinstance(url, str) and "//" in url else ""
    if (
        not share
        or "//" in share
        or share.startswith("<")
        or not re.fullmatch(r"[A-Za-z0-9._$-]+", share)
        or share in (".", "..")
    ):
        raise SpecError(
            f"{where}.azureFileUrl", url, "the share's URL, https://<account>.file.core.windows.net/<share>"
        )
    _optional_text(entry, "accountName", where)


def _file_server(entry: dict[str, Any], where: str) -> None:
    server = entry.get("fileServer")
    identity = server.get("id") if isinstance(server, dict) else server
    if not isinstance(identity, str) or not identity.rstrip("/").rsplit("/", 1)[-1]:
        raise SpecError(f"{where}.fileServer", server, 'the file server: {"id": <its name or ARM id>}')
    source = entry.get("sourceDirectory")
    if source is not None:
        if not isinstance(source, str):
            raise SpecError(f"{where}.sourceDirectory", source, "a directory inside the file server")
        clean_relative_path(source.lstrip("/"), f"{where}.sourceDirectory")


def _unmanaged(entry: dict[str, Any], where: str) -> None:
    command = entry.get("mountCommand")
    if not isinstance(command, str) or not command.strip():
        raise SpecError(
            f"{where}.mountCommand",
            command,
            "the command that mounts the file system (the mount path is appended to it)",
        )


def _optional_text(entry: dict[str, Any], key: str, where: str) -> None:
    if entry.get(key) is not None and not isinstance(entry[key], str):
        raise SpecError(f"{where}.{key}", entry[key], "a string")


def _check_credentials(entry: dict[str, Any], where: str) -> None:
    key, credentials = entry_credentials(entry)
    if credentials is None:
        return
    if not isinstance(credentials, dict):
        raise SpecError(f"{where}.{key}", _HIDDEN, 'an object {"accountKey": ...}')
    for name, value in credentials.items():
        if value is not None and not isinstance(value, (str, dict)):
            raise SpecError(f"{where}.{key}.{name}", _HIDDEN, "a string")


_CHECKS = {
    "azureBlobFileSystems": _container,
    "azureFileShares": _share,
    "fileServers": _file_server,
    "unmanagedFileSystems": _unmanaged,
}
