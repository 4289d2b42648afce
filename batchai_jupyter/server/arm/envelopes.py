"""The service's views (core/views.py) in ARM's envelope: `{id, name, type, [location, tags,] properties}`,
with Batch AI 2018-05-01's property names and read-only fields inside `properties`."""

from __future__ import annotations

from typing import Any

from ...core.durations import parse_duration
from ...ports.layout import setup_segment
from .ids import PROVIDER, workspace_id

SUCCEEDED = "succeeded"


def _clean(value: Any) -> Any:
    """ARM leaves unset properties out (the SDK reads a missing key and a null alike)."""
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def iso_duration(seconds: float) -> str:
    """ISO 8601, as ARM and the SDK's `duration` fields carry it: 604800 -> 'P7D', 5400 -> 'PT1H30M'."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    fraction = seconds - whole
    time = "".join(
        f"{value}{unit}"
        for value, unit in ((hours, "H"), (minutes, "M"), (secs + fraction if fraction else secs, "S"))
        if value
    )
    return f"P{f'{days}D' if days else ''}{f'T{time}' if time else ''}" if (days or time) else "PT0S"


def workspace(subscription: str, view: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": workspace_id(subscription, view["resourceGroup"], view["name"]),
        "name": view["name"],
        "type": f"{PROVIDER}/workspaces",
        "location": view["location"],
        "tags": view["tags"],
        "properties": {
            "creationTime": view["creationTime"],
            "provisioningState": SUCCEEDED,
            "provisioningStateTransitionTime": view["creationTime"],
        },
    }


def experiment(base: str, view: dict[str, Any]) -> dict[str, Any]:
    """`base` is the workspace's id."""
    return {
        "id": f"{base}/experiments/{view['name']}",
        "name": view["name"],
        "type": f"{PROVIDER}/workspaces/experiments",
        "properties": {
            "creationTime": view["creationTime"],
            "provisioningState": SUCCEEDED,
            "provisioningStateTransitionTime": view["creationTime"],
        },
    }


def cluster(base: str, view: dict[str, Any]) -> dict[str, Any]:
    spec = view["properties"]
    node_setup = dict(spec.get("nodeSetup") or {})
    if isinstance(node_setup.get("setupTask"), dict):  # Batch AI's read-only suffix: where the logs go
        parts = base.split("/")  # /subscriptions/{s}/resourceGroups/{rg}/providers/{provider}/workspaces/{ws}
        suffix = setup_segment(parts[2], parts[4], parts[-1], view["name"], view["uuid"])
        node_setup["setupTask"] = {**node_setup["setupTask"], "stdOutErrPathSuffix": suffix}
    properties = {
        "vmSize": spec.get("vmSize"),
        "vmPriority": spec.get("vmPriority"),
        "scaleSettings": spec.get("scaleSettings"),
        "nodeSetup": {key: value for key, value in node_setup.items() if value} or None,
        "creationTime": view["creationTime"],
        "provisioningState": view["provisioningState"],
        "provisioningStateTransitionTime": view["creationTime"],
        "allocationState": view["allocationState"],
        "currentNodeCount": view["currentNodeCount"],
        "nodeStateCounts": view["nodeStateCounts"],
        "errors": view["errors"] or None,
    }
    return {
        "id": f"{base}/clusters/{view['name']}",
        "name": view["name"],
        "type": f"{PROVIDER}/workspaces/clusters",
        "properties": _clean(properties),
    }


ARM_TOOL_TYPES = {"mpi": "custommpi"}

# Native conveniences of the job's properties that Batch AI's Job has not.
_NATIVE_ONLY = ("name", "workspace", "experiment")


def job(base: str, view: dict[str, Any]) -> dict[str, Any]:
    properties = {key: value for key, value in view["properties"].items() if key not in _NATIVE_ONLY}
    wall_clock = (view["properties"].get("constraints") or {}).get("maxWallClockTime")
    properties["constraints"] = {
        "maxWallClockTime": iso_duration(parse_duration(wall_clock, "constraints.maxWallClockTime"))
    }
    properties["cluster"] = {"id": f"{base}/clusters/{view['cluster']}"}
    # 2018-05-01's ToolType enum (as the SDK reads it) says custommpi where earlier versions said mpi
    properties["toolType"] = ARM_TOOL_TYPES.get(properties.get("toolType"), properties.get("toolType"))
    properties["environmentVariables"] = properties.get("environmentVariables") or None
    properties["secrets"] = properties.get("secrets") or None
    info = view["executionInfo"]
    properties.update(
        {
            "jobOutputDirectoryPathSegment": view["jobOutputDirectoryPathSegment"],
            "creationTime": view["creationTime"],
            "provisioningState": SUCCEEDED,
            "provisioningStateTransitionTime": view["creationTime"],
            "executionState": view["executionState"],
            "executionStateTransitionTime": view["executionStateTransitionTime"],
            "executionInfo": {
                "startTime": info["startTime"],
                "endTime": info["endTime"],
                "exitCode": info["exitCode"],
                "errors": info["errors"] or None,
            }
            if info["startTime"] or info["errors"]
            else None,
        }
    )
    return {
        "id": f"{base}/experiments/{view['experiment']}/jobs/{view['name']}",
        "name": view["name"],
        "type": f"{PROVIDER}/workspaces/experiments/jobs",
        "properties": _clean(properties),
    }


def file_server(base: str, view: dict[str, Any]) -> dict[str, Any]:
    """A file server here is a shared directory the service keeps (a local datastore): it has no VM, so
    only what a job uses of it is shown: its name, and where it is as a location."""
    return {
        "id": f"{base}/fileServers/{view['name']}",
        "name": view["name"],
        "type": f"{PROVIDER}/workspaces/fileServers",
        "properties": {"provisioningState": SUCCEEDED, "mountSettings": {"mountPoint": view["location"]}},
    }


def output_file(entry: dict[str, Any], download_url: str | None) -> dict[str, Any]:
    """A listed file or directory, as Batch AI's File: size and time inside `properties`, a download
    link that works without the service's token (files only)."""
    if entry["fileType"] == "directory":
        return {"name": entry["name"], "fileType": "directory"}
    return _clean(
        {
            "name": entry["name"],
            "fileType": "file",
            "downloadUrl": download_url,
            "properties": {"lastModified": entry["lastModified"], "contentLength": entry["contentLength"]},
        }
    )


def remote_login(node: dict[str, Any]) -> dict[str, Any]:
    return _clean({"nodeId": node["nodeId"], "ipAddress": node["ipAddress"], "port": node["port"]})
