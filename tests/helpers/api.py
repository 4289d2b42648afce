"""Short forms of the client calls the tests make on the `default` workspace."""

from __future__ import annotations

import os

from batchai_jupyter.client import Client

from .waits import wait_for


def make_cluster(client: Client, name: str, nodes: int = 2, wait: bool = True, **extra) -> dict:
    client.create_cluster("default", {"backend": "local", "nodeCount": nodes, **extra}, name)
    if wait:
        return wait_for(lambda: _steady(client, name, nodes), f"cluster {name} to have {nodes} idle nodes")
    return client.get(client.cluster_path("default", name))


def _steady(client: Client, name: str, nodes: int):
    cluster = client.get(client.cluster_path("default", name))
    counts = cluster["nodeStateCounts"]
    return cluster if counts["idleNodeCount"] + counts["runningNodeCount"] == nodes else None


def submit(client: Client, name: str, cluster: str, spec: dict, experiment: str = "default") -> dict:
    return client.create_job("default", experiment, {"cluster": cluster, **spec}, name)


def wait_job(client: Client, name: str, timeout: float = 120.0, experiment: str = "default") -> dict:
    return client.wait_for_job("default", experiment, name, timeout=timeout)


def read_log(
    client: Client, job: str, file_name: str, output_id: str = "stdouterr", experiment: str = "default"
) -> str:
    """The file now; a file the job has not written yet is a 404 (a wait_for retries it)."""
    return client.read_job_file("default", experiment, job, file_name, output_id).decode()


def stdout_text(client: Client, job: str) -> str:
    """Every stdout file of the job (one per task, by name), joined."""
    texts = []
    for entry in client.list(f"workspaces/default/experiments/default/jobs/{job}/files", outputdirectoryid="stdouterr"):
        if entry["fileType"] == "file" and entry["name"].startswith("stdout"):
            texts.append(client.read_job_file("default", "default", job, entry["name"], "stdouterr").decode())
    return "\n".join(texts)


def execution_log(client: Client, job: str) -> str:
    """The job's execution log (the service's own account of what it did for the job)."""
    names = [
        e["name"]
        for e in client.list(f"workspaces/default/experiments/default/jobs/{job}/files", outputdirectoryid="stdouterr")
        if e["name"].startswith("execution")
    ]
    return read_log(client, job, names[0])


def execution_logs_so_far(client: Client, job: str) -> str:
    """Every execution log the job has now (one per node), joined; "" before the first."""
    entries = client.list(f"workspaces/default/experiments/default/jobs/{job}/files", outputdirectoryid="stdouterr")
    return "\n".join(read_log(client, job, e["name"]) for e in entries if e["name"].startswith("execution"))


def job_folder(home: str, client: Client, job: str, experiment: str = "default") -> str:
    """The job's folder in the `default` workspace's default datastore (a local one under the home), by the
    segment the service gave it (Batch AI's jobOutputDirectoryPathSegment)."""
    segment = client.job("default", experiment, job)["jobOutputDirectoryPathSegment"]
    return os.path.join(home, "datastores", "default", "default", segment)
