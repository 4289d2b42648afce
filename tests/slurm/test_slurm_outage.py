"""slurmctld down for a while (a restart, an outage): nothing fails, jobs wait, the cluster says why,
and all goes on when it is back. A Slurm of this module's own, so no other test sees the outage."""

from __future__ import annotations

import signal

from helpers.api import read_log, submit, wait_job
from helpers.slurm import make_slurm_cluster
from helpers.slurm_daemons import wait_gone
from helpers.waits import wait_for


def test_controller_outage_keeps_jobs_waiting_and_resumes(slurm, slurm_client, unique, tmp_path):
    cluster = unique("outage")
    make_slurm_cluster(slurm_client, cluster)
    flag = tmp_path / "go"
    running, later = unique("during"), unique("after")
    submit(
        slurm_client,
        running,
        cluster,
        {
            "customToolkitSettings": {
                "commandLine": f"echo started; while [ ! -e {flag} ]; do sleep 0.2; done; echo done"
            }
        },
    )
    wait_for(
        lambda: (
            "started" in read_log(slurm_client, running, "stdout.txt")
            if slurm_client.job("default", "default", running)["executionState"] == "running"
            else False
        ),
        "the first job to run",
        timeout=120,
    )
    pid = slurm.kill("slurmctld", signal.SIGTERM)
    assert pid and wait_gone(pid, 30), "slurmctld did not stop"
    try:
        submit(slurm_client, later, cluster, {"customToolkitSettings": {"commandLine": "echo after the outage"}})

        def told():
            view = slurm_client.job("default", "default", later)
            return view if "cannot be reached" in view.get("waitingReason", "") else None

        view = wait_for(told, "the queued job to say the scheduler cannot be reached", timeout=90)
        assert view["executionState"] == "queued", view
        errors = slurm_client.get(slurm_client.cluster_path("default", cluster))["errors"]
        assert [e["code"] for e in errors] == ["SchedulerUnavailable"], errors
        # The running job ends while slurmctld is down: its result is on the shared file system.
        flag.write_text("")
        job = wait_job(slurm_client, running, timeout=120)
        assert job["executionState"] == "succeeded", job["executionInfo"]
        assert slurm_client.job("default", "default", later)["executionState"] == "queued"
    finally:
        slurm.start_controller()
    job = wait_job(slurm_client, later, timeout=180)
    assert job["executionState"] == "succeeded", job["executionInfo"]
    assert read_log(slurm_client, later, "stdout.txt") == "after the outage\n"
    wait_for(
        lambda: slurm_client.get(slurm_client.cluster_path("default", cluster))["errors"] == [],
        "the cluster's outage error to clear",
        timeout=60,
    )
