"""Batch AI's jobOutputDirectoryPathSegment: `<subscription>/<resource group>/workspaces/<ws>/experiments/<exp>/
jobs/<job>/<uuid with dashes>`, from the service's subscription and the workspace's resource group; the job's
output and stdouterr directories are that segment's `outputs/<ID>` and `stdouterr` (issue 13 item 4)."""

from __future__ import annotations

import re

import requests
from azure.mgmt.batchai import models

from helpers.arm import SUBSCRIPTION
from helpers.waits import wait_for

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def test_the_segment_names_subscription_resource_group_workspace_experiment_job_and_a_dashed_uuid(sdk):
    sdk.workspaces.begin_create("Seg-RG", "segws", models.WorkspaceCreateParameters(location="eastus")).result()
    sdk.experiments.begin_create("Seg-RG", "segws", "exp").result()
    cluster = sdk.clusters.begin_create(
        "Seg-RG",
        "segws",
        "one",
        models.ClusterCreateParameters(
            vm_size="STANDARD_D1",
            scale_settings=models.ScaleSettings(manual=models.ManualScaleSettings(target_node_count=1)),
            user_account_settings=models.UserAccountSettings(admin_user_name="demo"),
        ),
    ).result()
    command = 'echo "$AZ_BATCHAI_OUTPUT_OUT"; echo "$AZ_BATCHAI_STDOUTERR_DIR"'
    job = sdk.jobs.begin_create(
        "Seg-RG",
        "segws",
        "exp",
        "envjob",
        models.JobCreateParameters(
            cluster=models.ResourceId(id=cluster.id),
            node_count=1,
            std_out_err_path_prefix="$AZ_BATCHAI_JOB_MOUNT_ROOT/afs",
            output_directories=[models.OutputDirectory(id="OUT", path_prefix="$AZ_BATCHAI_JOB_MOUNT_ROOT/afs")],
            custom_toolkit_settings=models.CustomToolkitSettings(command_line=command),
        ),
    ).result()
    segment = job.job_output_directory_path_segment
    # The resource group as the workspace was created in it (ARM keeps a name's case).
    assert re.fullmatch(rf"{SUBSCRIPTION}/Seg-RG/workspaces/segws/experiments/exp/jobs/envjob/{UUID}", segment)

    def ended():
        found = sdk.jobs.get("Seg-RG", "segws", "exp", "envjob")
        return found if found.execution_state in ("succeeded", "failed") else None

    assert wait_for(ended, "the job to end", timeout=120).execution_state == "succeeded"
    files = sdk.jobs.list_output_files(
        "Seg-RG", "segws", "exp", "envjob", models.JobsListOutputFilesOptions(outputdirectoryid="stdouterr")
    )
    stdout = next(f for f in files if f.name == "stdout.txt")
    output_dir, stdouterr_dir = requests.get(stdout.download_url, timeout=30).text.split()
    assert output_dir.endswith(f"/{segment}/outputs/OUT"), output_dir
    assert stdouterr_dir.endswith(f"/{segment}/stdouterr"), stdouterr_dir
    sdk.workspaces.begin_delete("Seg-RG", "segws").result()
