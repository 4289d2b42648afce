"""Microsoft's azure-mgmt-batchai 7.0.0, unchanged, driving every operation group of a real `batchai serve`:
create/get/list/update/delete, LRO pollers, output files with their download links, remote login
information, terminate, usages, and waiting for a job with the SDK's own calls."""

from __future__ import annotations

import re
import time

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.batchai import models

from helpers.arm import SUBSCRIPTION
from helpers.arm_sdk import manual_cluster, wait_for_idle_nodes, wait_for_job_completion
from helpers.waits import wait_for

RG = "sdk-rg"


def custom_job(cluster_id: str, command: str) -> models.JobCreateParameters:
    return models.JobCreateParameters(
        cluster=models.ResourceId(id=cluster_id),
        node_count=1,
        std_out_err_path_prefix="$AZ_BATCHAI_JOB_MOUNT_ROOT/afs",
        output_directories=[models.OutputDirectory(id="MODEL", path_prefix="$AZ_BATCHAI_JOB_MOUNT_ROOT/afs")],
        custom_toolkit_settings=models.CustomToolkitSettings(command_line=command),
    )


@pytest.fixture(scope="module")
def workspace(sdk):
    """A workspace with an experiment and a 1-node cluster, made with the SDK's pollers."""
    sdk.workspaces.begin_create(RG, "sdkws", models.WorkspaceCreateParameters(location="eastus")).result()
    sdk.experiments.begin_create(RG, "sdkws", "exp").result()
    cluster = sdk.clusters.begin_create(RG, "sdkws", "cpu", manual_cluster(1)).result()
    wait_for_idle_nodes(sdk, RG, "sdkws", "cpu", 1)
    return cluster


def test_workspaces(sdk):
    created = sdk.workspaces.begin_create(
        RG, "ws-crud", models.WorkspaceCreateParameters(location="westus2", tags={"team": "vision"})
    ).result()
    arm_id = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.BatchAI/workspaces/ws-crud"
    assert created.id == arm_id
    assert (created.name, created.location, created.tags) == ("ws-crud", "westus2", {"team": "vision"})
    assert created.provisioning_state == "succeeded" and created.creation_time is not None
    # PUT again is the same workspace; another resource group cannot have the name too.
    again = sdk.workspaces.begin_create(RG, "ws-crud", models.WorkspaceCreateParameters(location="westus2")).result()
    assert again.creation_time == created.creation_time
    with pytest.raises(HttpResponseError) as taken:
        sdk.workspaces.begin_create("other-rg", "ws-crud", models.WorkspaceCreateParameters(location="x")).result()
    assert taken.value.status_code == 409 and "resource group 'sdk-rg'" in taken.value.message

    assert "ws-crud" in [w.name for w in sdk.workspaces.list()]
    assert [w.name for w in sdk.workspaces.list_by_resource_group("other-rg")] == []
    assert "ws-crud" in [w.name for w in sdk.workspaces.list_by_resource_group(RG.upper())]  # ARM: any case
    updated = sdk.workspaces.update(RG, "ws-crud", models.WorkspaceUpdateParameters(tags={"team": "nlp"}))
    assert updated.tags == {"team": "nlp"} == sdk.workspaces.get(RG, "ws-crud").tags
    with pytest.raises(ResourceNotFoundError):
        sdk.workspaces.get("other-rg", "ws-crud")

    sdk.workspaces.begin_delete(RG, "ws-crud").result()
    with pytest.raises(ResourceNotFoundError):
        sdk.workspaces.get(RG, "ws-crud")
    sdk.workspaces.begin_delete(RG, "ws-crud").result()  # nothing left to delete: 204, not an error


def test_experiments(sdk, workspace):
    made = sdk.experiments.begin_create(RG, "sdkws", "exp-crud").result()
    assert made.id.endswith("/workspaces/sdkws/experiments/exp-crud") and made.provisioning_state == "succeeded"
    assert sdk.experiments.get(RG, "sdkws", "exp-crud").name == "exp-crud"
    assert {"exp", "exp-crud"} <= {e.name for e in sdk.experiments.list_by_workspace(RG, "sdkws")}
    sdk.experiments.begin_delete(RG, "sdkws", "exp-crud").result()
    with pytest.raises(ResourceNotFoundError):
        sdk.experiments.get(RG, "sdkws", "exp-crud")


def test_clusters(sdk, workspace):
    assert workspace.vm_size == "STANDARD_D1" and workspace.scale_settings.manual.target_node_count == 1
    found = sdk.clusters.get(RG, "sdkws", "cpu")
    assert found.id.endswith("/workspaces/sdkws/clusters/cpu") and found.current_node_count == 1
    assert "cpu" in [c.name for c in sdk.clusters.list_by_workspace(RG, "sdkws")]
    [login] = list(sdk.clusters.list_remote_login_information(RG, "sdkws", "cpu"))
    assert login.node_id and login.ip_address

    with_setup = manual_cluster(0)
    with_setup.node_setup = models.NodeSetup(
        setup_task=models.SetupTask(command_line="true", std_out_err_path_prefix="$AZ_BATCHAI_MOUNT_ROOT/afs")
    )
    made = sdk.clusters.begin_create(RG, "sdkws", "auto", with_setup).result()
    suffix = made.node_setup.setup_task.std_out_err_path_suffix  # Batch AI's: where the setup task's logs go
    assert re.fullmatch(f"{SUBSCRIPTION}/{RG}/workspaces/sdkws/clusters/auto/[0-9a-f-]{{36}}", suffix), suffix
    scaled = sdk.clusters.update(
        RG,
        "sdkws",
        "auto",
        models.ClusterUpdateParameters(
            scale_settings=models.ScaleSettings(
                auto_scale=models.AutoScaleSettings(minimum_node_count=0, maximum_node_count=3)
            )
        ),
    )
    assert scaled.scale_settings.auto_scale.maximum_node_count == 3 and scaled.scale_settings.manual is None
    with pytest.raises(HttpResponseError) as exists:
        sdk.clusters.begin_create(RG, "sdkws", "auto", manual_cluster(0)).result()
    assert exists.value.status_code == 409
    sdk.clusters.begin_delete(RG, "sdkws", "auto").result()
    with pytest.raises(ResourceNotFoundError):
        sdk.clusters.get(RG, "sdkws", "auto")


def test_file_servers(sdk, workspace):
    made = sdk.file_servers.begin_create(
        RG,
        "sdkws",
        "nfs",
        models.FileServerCreateParameters(
            vm_size="STANDARD_D1",
            ssh_configuration=models.SshConfiguration(
                user_account_settings=models.UserAccountSettings(admin_user_name="demo", admin_user_password="x")
            ),
            data_disks=models.DataDisks(disk_size_in_gb=10, disk_count=1, storage_account_type="Standard_LRS"),
        ),
    ).result()
    assert made.id.endswith("/workspaces/sdkws/fileServers/nfs") and made.provisioning_state == "succeeded"
    assert "nfs" in [f.name for f in sdk.file_servers.list_by_workspace(RG, "sdkws")]


def test_a_job_from_create_to_delete(sdk, workspace):
    command = "echo hello from $AZ_BATCHAI_JOB_NAME; echo weights > $AZ_BATCHAI_OUTPUT_MODEL/model.txt"
    created = sdk.jobs.begin_create(RG, "sdkws", "exp", "train", custom_job(workspace.id, command)).result()
    assert created.id.endswith("/workspaces/sdkws/experiments/exp/jobs/train")
    assert created.cluster.id == workspace.id and created.provisioning_state == "succeeded"
    assert re.fullmatch(
        rf"{SUBSCRIPTION}/{RG}/workspaces/sdkws/experiments/exp/jobs/train/[0-9a-f]{{8}}(-[0-9a-f]{{4}}){{3}}-[0-9a-f]{{12}}",
        created.job_output_directory_path_segment,
    )
    assert created.constraints.max_wall_clock_time.days == 7  # P7D, Batch AI's default

    ended = wait_for_job_completion(sdk, RG, "sdkws", "exp", "train")
    assert ended.execution_state == "succeeded" and ended.execution_info.exit_code == 0
    assert ended.execution_info.start_time <= ended.execution_info.end_time

    files = {
        f.name: f
        for f in sdk.jobs.list_output_files(
            RG, "sdkws", "exp", "train", models.JobsListOutputFilesOptions(outputdirectoryid="stdouterr")
        )
    }
    stdout = files["stdout.txt"]
    assert stdout.file_type == "file" and stdout.content_length > 0 and stdout.last_modified is not None
    # The link works without the service's token, as Batch AI's SAS URLs did.
    downloaded = requests.get(stdout.download_url, timeout=30)
    assert downloaded.status_code == 200 and downloaded.text == "hello from train\n"
    assert requests.get(stdout.download_url.replace("stdout.txt", "stderr.txt"), timeout=30).status_code == 403
    [model] = sdk.jobs.list_output_files(
        RG, "sdkws", "exp", "train", models.JobsListOutputFilesOptions(outputdirectoryid="MODEL")
    )
    assert model.name == "model.txt" and requests.get(model.download_url, timeout=30).text == "weights\n"

    [node] = list(sdk.jobs.list_remote_login_information(RG, "sdkws", "exp", "train"))
    assert node.node_id == next(iter(sdk.clusters.list_remote_login_information(RG, "sdkws", "cpu"))).node_id

    sdk.jobs.begin_delete(RG, "sdkws", "exp", "train").result()
    with pytest.raises(ResourceNotFoundError):
        sdk.jobs.get(RG, "sdkws", "exp", "train")
    assert requests.get(stdout.download_url, timeout=30).status_code == 404  # its job is gone


def test_listing_pages_follow_next_link(sdk, workspace):
    for name in ("page-a", "page-b", "page-c"):
        sdk.jobs.begin_create(RG, "sdkws", "exp", name, custom_job(workspace.id, "true")).result()
    options = models.JobsListByExperimentOptions(max_results=1)
    pages = list(sdk.jobs.list_by_experiment(RG, "sdkws", "exp", options).by_page())
    names = [job.name for page in pages for job in page]
    assert {"page-a", "page-b", "page-c"} <= set(names) and len(pages) == len(names) >= 3
    for name in ("page-a", "page-b", "page-c"):
        wait_for_job_completion(sdk, RG, "sdkws", "exp", name)
        sdk.jobs.begin_delete(RG, "sdkws", "exp", name).result()


def test_terminate(sdk, workspace):
    sdk.jobs.begin_create(RG, "sdkws", "exp", "forever", custom_job(workspace.id, "sleep 600")).result()
    wait_for(
        lambda: sdk.jobs.get(RG, "sdkws", "exp", "forever").execution_state == "running", "the job to run", timeout=60
    )
    started = time.monotonic()
    sdk.jobs.begin_terminate(RG, "sdkws", "exp", "forever").result()
    terminated = sdk.jobs.get(RG, "sdkws", "exp", "forever")
    assert terminated.execution_state == "failed", terminated.execution_state  # ended when the poller says done
    assert time.monotonic() - started < 590  # the sleep did not run out: it was stopped
    assert [e.code for e in terminated.execution_info.errors] == ["JobTerminated"]
    sdk.jobs.begin_delete(RG, "sdkws", "exp", "forever").result()


def test_usages_and_operations(sdk, workspace):
    usages = {u.name.value: u for u in sdk.usages.list("eastus")}
    assert usages["Clusters"].current_value >= 1 and usages["Clusters"].unit == "Count"
    assert usages["Total Cluster Dedicated Regional vCPUs"].current_value >= 1
    names = {o.name for o in sdk.operations.list()}
    assert {"Microsoft.BatchAI/jobs/terminate/action", "Microsoft.BatchAI/clusters/write"} <= names


def test_errors_reach_the_sdk_as_azure_errors(sdk, workspace):
    with pytest.raises(ResourceNotFoundError) as missing:
        sdk.jobs.get(RG, "sdkws", "exp", "no-such-job")
    assert missing.value.error.code == "JobNotFound" and "no-such-job" in missing.value.message
    bad = custom_job(workspace.id, "true")
    bad.node_count = 0
    with pytest.raises(HttpResponseError) as refused:
        sdk.jobs.begin_create(RG, "sdkws", "exp", "bad", bad).result()
    assert refused.value.status_code == 400 and "nodeCount" in refused.value.message
