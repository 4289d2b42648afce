"""Request bodies built from options: a cluster spec from a cluster.json (or native spec) and the
options of `batchai cluster create`, `%batchai_cluster create` and `Workspace.clusters.create`; a job
document's image (`--image` of `batchai job create` and `%%batchai_job`)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import BatchAIError


def cluster_document(
    parameters: dict | None = None,
    *,
    nodes: int | None = None,
    backend: str | None = None,
    min_nodes: int | None = None,
    max_nodes: int | None = None,
    idle_seconds: float | None = None,
    setup: str | None = None,
    priority: str | None = None,
    vm_size: str | None = None,
    cpus: int | None = None,
    backend_options: dict | None = None,
    native_mounts: bool | None = None,
    node_per_host: bool = False,
    default_backend: str | None = None,
) -> dict:
    """`parameters` (with or without Batch AI's "properties" wrapper) with the given options overriding
    it, as `az batchai cluster create -f` did. `node_per_host`: a cluster given `hosts` and no size
    anywhere gets one node per host; `default_backend` applies when neither names a backend."""
    document = dict(parameters or {})
    body = dict(document.get("properties", document))
    options = backend_options or {}
    if (
        node_per_host
        and options.get("hosts")
        and nodes is None
        and min_nodes is None
        and "nodeCount" not in body
        and "scaleSettings" not in body
    ):
        nodes = len(options["hosts"])
    overrides = {
        "backend": backend,
        "vmSize": vm_size,
        "vmPriority": priority,
        "cpusPerNode": cpus,
        "idleSecondsBeforeScaledown": idle_seconds,
        "setupTask": setup,
        "nativeMounts": native_mounts,
    }
    if nodes is not None:
        overrides["nodeCount"] = nodes
    if min_nodes is not None or max_nodes is not None:
        overrides["minNodes"] = min_nodes or 0
        overrides["maxNodes"] = max_nodes if max_nodes is not None else min_nodes
    if "nodeCount" in overrides or "minNodes" in overrides:
        body.pop("scaleSettings", None)
    body.update({key: value for key, value in overrides.items() if value is not None})
    if options:
        body["backendOptions"] = {**(body.get("backendOptions") or {}), **options}
    if default_backend and "backend" not in body and "properties" not in document:
        body["backend"] = default_backend
    return {**document, "properties": body} if "properties" in document else body


def with_image(document: dict[str, Any], image: str, credentials: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A copy of the job `document` (a Batch AI job.json or a native spec) that runs in `image`; the
    registry's `credentials` ({"username", "password"[, "serverUrl"]}) replace any the document has."""
    document = copy.deepcopy(document)
    body = document["properties"] if isinstance(document.get("properties"), dict) else document
    body.pop("image", None)
    settings = body.setdefault("containerSettings", {})
    if not isinstance(settings, dict):
        settings = body["containerSettings"] = {}
    registry = settings.setdefault("imageSourceRegistry", {})
    registry["image"] = image
    if credentials is not None:
        unknown = sorted(set(credentials) - {"username", "password", "serverUrl"})
        if unknown or not credentials.get("username") or not credentials.get("password"):
            raise BatchAIError(
                "InvalidArgument",
                "--registry-credentials: give a dict with username and password (and serverUrl when the image's "
                f"name has no registry){f'; unknown key {unknown[0]!r}' if unknown else ''}",
            )
        registry["credentials"] = {"username": credentials["username"], "password": credentials["password"]}
        if credentials.get("serverUrl"):
            registry["serverUrl"] = credentials["serverUrl"]
    return document


# az batchai's --use-auto-storage: its share and container, and where they were mounted.
AUTO_STORAGE_SHARE = ("batchaishare", "autoafs")
AUTO_STORAGE_CONTAINER = ("batchaicontainer", "autobfs")


def az_mount_volumes(
    *,
    shares: Sequence[tuple[str, str]] = (),
    containers: Sequence[tuple[str, str]] = (),
    file_servers: Sequence[tuple[str, str]] = (),
    account: str = "",
    key: str = "",
) -> dict:
    """The mountVolumes of az's --afs-name/--bfs-name/--nfs (each (name, relative mount path))."""
    credentials = {"credentials": {"accountKey": key}} if key else {}
    volumes: dict[str, list] = {}
    for name, path in shares:
        url = f"https://{account or 'local'}.file.core.windows.net/{name}"
        volumes.setdefault("azureFileShares", []).append(
            {"accountName": account, "azureFileUrl": url, **credentials, "relativeMountPath": path}
        )
    for name, path in containers:
        volumes.setdefault("azureBlobFileSystems", []).append(
            {"accountName": account, "containerName": name, **credentials, "relativeMountPath": path}
        )
    for name, path in file_servers:
        volumes.setdefault("fileServers", []).append(
            {"fileServer": {"id": name}, "relativeMountPath": path, "mountOptions": "rw"}
        )
    return volumes


def with_mount_volumes(document: dict, volumes: dict, cluster: bool) -> dict:
    """`document` (wrapped or not) with `volumes`' entries added to its mountVolumes (a cluster's in
    nodeSetup unless it has them at the top)."""
    if not volumes:
        return document
    body = dict(document.get("properties", document))
    holder = body
    if cluster and "mountVolumes" not in body:
        holder = dict(body.get("nodeSetup") or {})
        body["nodeSetup"] = holder
    merged = dict(holder.get("mountVolumes") or {})
    for kind, entries in volumes.items():
        merged[kind] = [*(merged.get(kind) or []), *entries]
    holder["mountVolumes"] = merged
    return {**document, "properties": body} if "properties" in document else body
