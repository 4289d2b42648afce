"""Operation URLs outlive the service: their status is read from the resources' state, so a create, a
delete and a terminate answered before a restart are followed to their end after it."""

from __future__ import annotations

from helpers.arm import SUBSCRIPTION, ArmHttp
from helpers.service import TOKEN, ServiceProcess, kill_leftover_tasks
from helpers.waits import wait_for

WORKSPACE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/restart-rg/providers/Microsoft.BatchAI/workspaces/rws"


def status(arm: ArmHttp, accepted) -> dict:
    return arm.session.get(accepted.headers["Azure-AsyncOperation"], timeout=60).json()


def test_operations_are_followed_across_a_restart(tmp_path):
    service = ServiceProcess(
        str(tmp_path / "home"), str(tmp_path / "runtime"), extra_env={"BATCHAI_SUBSCRIPTION_ID": SUBSCRIPTION}
    )
    service.start()
    try:
        arm = ArmHttp(service.url, TOKEN)
        made = arm.request("PUT", WORKSPACE, {"location": "westeurope"})
        assert made.status_code == 202, made.text  # the swagger's Workspaces_Create: 200 or 202
        arm.follow(arm.request("PUT", f"{WORKSPACE}/experiments/kept"))
        arm.follow(arm.request("PUT", f"{WORKSPACE}/experiments/gone"))
        deleted = arm.request("DELETE", f"{WORKSPACE}/experiments/gone")
        assert arm.follow(deleted).status_code == 204
        one_node = {"vmSize": "STANDARD_D1", "scaleSettings": {"manual": {"targetNodeCount": 1}}}
        arm.follow(arm.request("PUT", f"{WORKSPACE}/clusters/c1", {"properties": one_node}))
        job = f"{WORKSPACE}/experiments/kept/jobs/sleeper"
        body = {
            "nodeCount": 1,
            "cluster": {"id": f"{WORKSPACE}/clusters/c1"},
            "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs",
            "customToolkitSettings": {"commandLine": "sleep 600"},
        }
        submitted = arm.request("PUT", job, {"properties": body})
        assert submitted.status_code == 202, submitted.text
        wait_for(
            lambda: arm.request("GET", job).json()["properties"]["executionState"] == "running",
            "the job to run",
            timeout=120,
        )
        terminated = arm.request("POST", f"{job}/terminate")
        assert terminated.status_code == 202, terminated.text
        arm.follow(terminated)

        service.kill()
        service.start()

        assert status(arm, made)["status"] == "Succeeded"
        result = arm.session.get(made.headers["Location"], timeout=60)
        assert result.status_code == 200 and result.json()["name"] == "rws", result.text
        assert result.json()["location"] == "westeurope"
        assert status(arm, deleted)["status"] == "Succeeded"
        assert arm.session.get(deleted.headers["Location"], timeout=60).status_code == 204
        assert status(arm, submitted)["status"] == "Succeeded"
        assert arm.session.get(submitted.headers["Location"], timeout=60).json()["name"] == "sleeper"
        assert status(arm, terminated)["status"] == "Succeeded"

        # the job is deleted and made again under its name: the first job's create still succeeded, and a
        # delete of the new one is followed to its end
        arm.follow(arm.request("DELETE", job))
        again = arm.request("PUT", job, {"properties": dict(body, customToolkitSettings={"commandLine": "true"})})
        assert status(arm, submitted)["status"] == "Succeeded"
        assert arm.session.get(submitted.headers["Location"], timeout=60).status_code == 204
        assert arm.follow(again).json()["name"] == "sleeper"
    finally:
        service.stop()
        kill_leftover_tasks(service.home)
