"""What the tests driving the service with Microsoft's azure-mgmt-batchai SDK share: a cluster as a Batch AI
notebook asked for one, waiting for a job as Batch AI's utilities did, and reading a listed output file
through its downloadUrl."""

from __future__ import annotations

import requests
from azure.mgmt.batchai import models

from .waits import wait_for


def manual_cluster(nodes: int) -> models.ClusterCreateParameters:
    return models.ClusterCreateParameters(
        vm_size="STANDARD_D1",
        scale_settings=models.ScaleSettings(manual=models.ManualScaleSettings(target_node_count=nodes)),
        user_account_settings=models.UserAccountSettings(admin_user_name="demo", admin_user_password="not-kept"),
    )


def wait_for_idle_nodes(sdk, rg: str, ws: str, cluster: str, nodes: int) -> models.Cluster:
    def steady():
        found = sdk.clusters.get(rg, ws, cluster)
        return (
            found if found.allocation_state == "steady" and found.node_state_counts.idle_node_count == nodes else None
        )

    return wait_for(steady, f"cluster {cluster}'s {nodes} nodes", timeout=120)


def wait_for_job_completion(sdk, rg: str, ws: str, exp: str, job: str, timeout: float = 120) -> models.Job:
    """What Batch AI's utilities.job.wait_for_job_completion did: get the job until it ends."""

    def ended():
        found = sdk.jobs.get(rg, ws, exp, job)
        done = found.execution_state in (models.ExecutionState.SUCCEEDED, models.ExecutionState.FAILED)
        return found if done else None

    return wait_for(ended, f"job {job} to end", timeout=timeout, interval=0.3)


def output_texts(sdk, rg: str, ws: str, exp: str, job: str, output_id: str = "stdouterr") -> dict[str, str]:
    """{name: text} of the files of one output directory, read through their downloadUrls (no token)."""
    listed = sdk.jobs.list_output_files(
        rg, ws, exp, job, models.JobsListOutputFilesOptions(outputdirectoryid=output_id)
    )
    texts = {}
    for entry in listed:
        if entry.file_type == "file":
            response = requests.get(entry.download_url, timeout=60)
            response.raise_for_status()
            texts[entry.name] = response.text
    return texts
