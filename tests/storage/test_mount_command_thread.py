"""A job's mountCommand runs off its cluster's worker: while it waits (here for a gate file that never
opens), another job on the same cluster is created and finishes, the API answers, and the waiting job
is terminated, which stops its mount command. A failing command fails its job with the end of what it
printed. Through a real `batchai serve`."""

from __future__ import annotations

import os
import shlex

from helpers.api import make_cluster, wait_job
from helpers.waits import wait_for


def _job(client, name: str, cluster: str, properties: dict) -> None:
    properties = {"nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs", **properties}
    client.create_job("default", "default", {"properties": properties}, name, cluster=cluster)


def _state(client, job: str) -> str:
    return client.job("default", "default", job)["executionState"]


def test_a_slow_mount_command_holds_up_neither_its_cluster_nor_a_terminate(shared_client, unique, tmp_path):
    client = shared_client
    cluster = unique("mnt")
    make_cluster(client, cluster, nodes=2)
    gate, started = tmp_path / "gate", tmp_path / "started"
    wait = f"while [ ! -f {shlex.quote(str(gate))} ]; do sleep 0.05; done"
    mount = f"echo $$ > {shlex.quote(str(started))}; {wait}; mkdir -p"
    mounting = unique("mounting")
    _job(
        client,
        mounting,
        cluster,
        {
            "mountVolumes": {"unmanagedFileSystems": [{"mountCommand": mount, "relativeMountPath": "gated"}]},
            "customToolkitSettings": {"commandLine": "echo mounted"},
        },
    )
    wait_for(lambda: started.exists() and started.read_text().strip(), f"job {mounting}'s mount command to start")
    command = int(started.read_text())

    quick = unique("quick")
    _job(client, quick, cluster, {"customToolkitSettings": {"commandLine": "echo hi"}})
    assert wait_job(client, quick)["executionState"] == "succeeded"
    client.request("POST", client.job_path("default", "default", mounting) + "/terminate")
    wait_for(lambda: _state(client, mounting) == "failed", f"terminated job {mounting} to end")

    # All of that happened while the mount command still waited for its gate, and no task of the
    # mounting job ever started.
    assert not gate.exists()
    assert client.list(client.job_path("default", "default", mounting) + "/tasks") == []
    # The job's end stopped its mount command.
    wait_for(lambda: not os.path.exists(f"/proc/{command}"), f"mount command {command} to be stopped")
    assert "MountFailed" not in str(client.job("default", "default", mounting)["executionInfo"]["errors"])


def test_a_failing_mount_command_fails_its_job_with_what_it_printed(shared_client, unique):
    cluster = unique("mntbad")
    make_cluster(shared_client, cluster, nodes=1)
    job = unique("job")
    _job(
        shared_client,
        job,
        cluster,
        {
            "mountVolumes": {
                "unmanagedFileSystems": [
                    {"mountCommand": "echo 'server gluster1 refused' >&2; exit 3; :", "relativeMountPath": "g"}
                ]
            },
            "customToolkitSettings": {"commandLine": "true"},
        },
    )
    failed = wait_job(shared_client, job)
    errors = failed["executionInfo"]["errors"]
    assert failed["executionState"] == "failed"
    assert errors[-1]["code"] == "MountFailed"
    assert "exited with code 3" in errors[-1]["message"] and "server gluster1 refused" in errors[-1]["message"]
