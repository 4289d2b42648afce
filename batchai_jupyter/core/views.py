"""Store records and rows → the camelCase JSON the API returns (Batch AI's names, secrets never included)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from ..ports.compute import GpuUsage, LoadSample, Usage
from ..ports.datastores import FileEntry
from . import scheduler
from .cluster_spec import cluster_spec_to_wire
from .models import NODE_STATES, priority_name
from .records import Cluster, Job, JobBrief, Node, Task
from .spec import job_spec_to_wire


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def workspace_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "creationTime": iso(row["created"]),
        "resourceGroup": row["resource_group"],
        "location": row["location"],
        "tags": row["tags"],
    }


def experiment_view(row: dict[str, Any], job_count: int) -> dict[str, Any]:
    return {
        "name": row["name"],
        "workspace": row["workspace"],
        "creationTime": iso(row["created"]),
        "jobCount": job_count,
        **{key: value for key, value in row.get("tracking", {}).items() if value},
    }


def file_view(entry: FileEntry, folder: str) -> dict[str, Any]:
    """A file or folder of a listing of `folder` (a path relative to what is listed; "" its top)."""
    return {
        "name": entry.name,
        "path": f"{folder}/{entry.name}" if folder else entry.name,
        "fileType": entry.file_type,
        "contentLength": entry.size,
        "lastModified": iso(entry.modified),
    }


def job_view(job: Job, queue_position: int | None = None, waiting_reason: str = "") -> dict[str, Any]:
    spec = dataclasses.replace(job.spec, secrets={name: "" for name in job.with_secrets().secrets})  # names only
    view = {
        "name": job.name,
        "workspace": job.workspace,
        "experiment": job.experiment,
        "cluster": job.cluster,
        "uuid": job.uuid,
        "toolType": spec.toolkit.kind,
        "nodeCount": spec.node_count,
        "schedulingPriority": priority_name(job.priority),
        "executionState": job.state,
        "executionStateTransitionTime": iso(job.state_since),
        "creationTime": iso(job.created),
        "attempt": job.attempt,
        "maxRetries": spec.max_retries,
        "retriesUsed": job.retries_used,
        "jobOutputDirectoryPathSegment": job.segment,
        "executionInfo": {
            "startTime": iso(job.started),
            "endTime": iso(job.ended),
            "exitCode": job.exit_code,
            "errors": job.errors,
        },
        "properties": job_spec_to_wire(spec),
    }
    if job.state == "queued":
        view["queuePosition"] = queue_position
        if waiting_reason:
            view["waitingReason"] = waiting_reason
    return view


def task_view(task: Task, node: Node | None) -> dict[str, Any]:
    return {
        "name": task.name,
        "role": task.role,
        "index": task.rank,
        "attempt": task.attempt,
        "phase": task.phase,
        "node": node.name if node else None,
        "ip": node.ip if node else None,
        "state": task.state,
        "exitCode": task.exit_code,
        "stdout": task.stdout,
        "stderr": task.stderr,
        "startTime": iso(task.launched),
        "endTime": iso(task.ended),
    }


def node_state_counts(nodes: list[Node]) -> dict[str, int]:
    counts = {f"{state}NodeCount": 0 for state in NODE_STATES}
    for node in nodes:
        counts[f"{node.state}NodeCount"] += 1
    return counts


def cluster_view(cluster: Cluster, nodes: list[Node]) -> dict[str, Any]:
    spec = cluster.spec
    if spec.setup_task is not None:  # the store keeps secret values apart; show their names only
        spec = dataclasses.replace(
            spec, setup_task=dataclasses.replace(spec.setup_task, secrets={name: "" for name in cluster.secrets})
        )
    live = [n for n in nodes if n.state != "leaving"]
    steady = len(live) == cluster.target and not any(n.state in ("preparing", "leaving") for n in nodes)
    return {
        "name": cluster.name,
        "workspace": cluster.workspace,
        "backend": spec.backend,
        "uuid": cluster.uuid,
        "creationTime": iso(cluster.created),
        "provisioningState": "deleting" if cluster.deleting else "succeeded",
        "allocationState": "steady" if steady else "resizing",
        "currentNodeCount": len(nodes),
        "targetNodeCount": cluster.target,
        "nodeStateCounts": node_state_counts(nodes),
        "errors": cluster.errors,
        "properties": cluster_spec_to_wire(spec),
    }


def _usage_view(usage: Usage | GpuUsage) -> dict[str, Any]:
    return {_CAMEL[name]: value for name, value in dataclasses.asdict(usage).items()}


_CAMEL = {
    "index": "index",
    "cpu_percent": "cpuPercent",
    "utilization_percent": "utilizationPercent",
    "memory_used_bytes": "memoryUsedBytes",
    "memory_total_bytes": "memoryTotalBytes",
}


def load_view(load: LoadSample | None) -> dict[str, Any] | None:
    """A node's `load`: None where its backend reads none (or has not yet)."""
    if load is None:
        return None
    return {
        "sampled": iso(load.sampled),
        "scope": load.scope,
        **_usage_view(load.usage),
        "machine": None if load.machine is None else _usage_view(load.machine),
        "gpus": None if load.gpus is None else [_usage_view(gpu) for gpu in load.gpus],
    }


def node_view(node: Node, load: LoadSample | None = None) -> dict[str, Any]:
    return {
        "nodeId": node.name,
        "ipAddress": node.ip,
        "port": node.info.get("port"),
        "state": node.state,
        "jobId": node.job_id,
        "stateTransitionTime": iso(node.state_since),
        "cpus": node.info.get("cpus"),
        "gpus": node.info.get("gpus"),
        # how its tasks are kept from the service and other jobs ("bwrap", "none"; null: the backend's own)
        "isolation": node.info.get("isolation"),
        "errors": node.errors,
        "load": load_view(load),
    }


def queued_job(job: Job | JobBrief) -> scheduler.QueuedJob:
    """The scheduler's view of a queued job, from a full job record or a Store.job_briefs() one."""
    fields = job.spec if isinstance(job, Job) else job
    return scheduler.QueuedJob(
        job.id, f"{job.workspace}/{job.cluster}", job.priority, job.id, fields.node_count, fields.max_wall_clock_seconds
    )
