"""A Slurm cluster's life through a real Slurm: nodes and states from sinfo, terminate as scancel,
wall-clock limits, secrets kept out of Slurm, the node cap, a node lost mid-job, a service restart."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import subprocess
import time
import uuid

import pytest

from batchai_jupyter.client import Client
from batchai_jupyter.errors import BatchAIError
from helpers.api import read_log, submit, wait_job
from helpers.service import TOKEN
from helpers.slurm import make_slurm_cluster, start_slurm_service, stop_slurm_service
from helpers.waits import wait_for

JOB_TIMEOUT = 180.0


def slurm_out(slurm, *argv: str) -> str:
    return subprocess.run(list(argv), env=slurm.env(), capture_output=True, text=True, timeout=60).stdout


def slurm_state(slurm, slurm_job_id: str) -> str:
    return slurm_out(slurm, "squeue", "-h", "--states=all", "-j", slurm_job_id, "-o", "%T").strip()


def our_slurm_jobs(slurm, job: dict) -> list[str]:
    """Slurm job ids of every attempt of `job` Slurm knows (named batchai-<uuid>-<attempt>)."""
    lines = slurm_out(slurm, "squeue", "-h", "--states=all", "-o", "%i|%j").splitlines()
    return [line.split("|")[0] for line in lines if f"-{job['uuid']}-" in line]


def job_view(client, name: str) -> dict:
    return client.job("default", "default", name)


def wait_for_text(client, name: str, text: str, file_name: str = "stdout.txt", timeout: float = JOB_TIMEOUT) -> str:
    def found():
        content = read_log(client, name, file_name)
        return content if text in content else None

    return wait_for(found, f"{text!r} in {name}'s {file_name}", timeout=timeout)


def waiting_command(flag: str, before: str = "", after: str = "") -> str:
    """A job that prints `before`, waits for the test to create `flag`, then prints `after`."""
    return (
        f"echo {before or 'waiting'} slurm job $SLURM_JOB_ID; "
        f"while [ ! -e {shlex.quote(flag)} ]; do sleep 0.2; done; echo {after or 'released'}"
    )


@pytest.fixture(scope="module")
def hpc(slurm_service):
    make_slurm_cluster(Client(slurm_service.url, TOKEN), "hpc-life")
    return "hpc-life"


# -- nodes ----------------------------------------------------------------------------------------


def test_nodes_and_states_come_from_sinfo(slurm, slurm_client, hpc):
    nodes = {n["nodeId"]: n for n in slurm_client.list(slurm_client.cluster_path("default", hpc) + "/nodes")}
    assert set(nodes) == {"n1", "n2"}, nodes
    assert all(n["state"] == "idle" and n["cpus"] == 2 for n in nodes.values()), nodes
    assert nodes["n1"]["ipAddress"] != nodes["n2"]["ipAddress"]  # NodeAddr from slurm.conf
    slurm_out(slurm, "scontrol", "update", "nodename=n2", "state=drain", "reason=disk-check")
    try:

        def drained():
            cluster = slurm_client.get(slurm_client.cluster_path("default", hpc))
            return cluster if cluster["nodeStateCounts"]["unusableNodeCount"] == 1 else None

        cluster = wait_for(drained, "the drained node to show as unusable", timeout=60)
        assert cluster["nodeStateCounts"]["idleNodeCount"] == 1, cluster
        n2 = {n["nodeId"]: n for n in slurm_client.list(slurm_client.cluster_path("default", hpc) + "/nodes")}["n2"]
        assert "disk-check" in n2["errors"][0]["message"], n2
    finally:
        slurm_out(slurm, "scontrol", "update", "nodename=n2", "state=resume")
    wait_for(
        lambda: slurm_client.get(slurm_client.cluster_path("default", hpc))["nodeStateCounts"]["idleNodeCount"] == 2,
        "n2 to be idle again",
        timeout=60,
    )


def test_resize_and_autoscale_answer_that_slurm_sizes_the_cluster(slurm_client, hpc):
    for settings in ({"manual": {"targetNodeCount": 5}}, {"autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 4}}):
        with pytest.raises(BatchAIError) as failure:
            slurm_client.scale_cluster("default", hpc, settings)
        assert failure.value.code == "ClusterSizedByScheduler", failure.value
        assert "maxNodesInUse" in failure.value.message


def test_unknown_partition_and_bad_options_are_refused(slurm_client, unique):
    with pytest.raises(BatchAIError) as failure:
        slurm_client.create_cluster(
            "default", {"backend": "slurm", "backendOptions": {"partition": "gpu-nope"}}, unique("nope")
        )
    assert failure.value.code == "UnknownPartition" and "debug" in failure.value.message, failure.value
    with pytest.raises(BatchAIError) as failure:
        slurm_client.create_cluster(
            "default", {"backend": "slurm", "backendOptions": {"maxNodesInUse": "two"}}, unique("bad")
        )
    assert failure.value.code == "InvalidBackendOptions" and "maxNodesInUse" in failure.value.message
    assert not [c for c in slurm_client.clusters("default") if c["name"].startswith(("nope-", "bad-"))]


# -- running ------------------------------------------------------------------------------------


def test_logs_stream_while_running_and_secrets_stay_out_of_slurm(
    slurm, slurm_service, slurm_client, hpc, unique, tmp_path
):
    flag = str(tmp_path / "go")
    secret = f"pw-{uuid.uuid4().hex}"
    name = unique("stream")
    digest = hashlib.sha256(secret.encode()).hexdigest()
    command = 'echo the secret arrived: $(printf %s "$DB_PASSWORD" | sha256sum | cut -d" " -f1); ' + waiting_command(
        flag, after="second line"
    )
    submit(
        slurm_client,
        name,
        hpc,
        {"secrets": [{"name": "DB_PASSWORD", "value": secret}], "customToolkitSettings": {"commandLine": command}},
    )
    text = wait_for_text(slurm_client, name, "waiting slurm job")
    assert f"the secret arrived: {digest}" in text and "second line" not in text, text  # streamed as it runs
    slurm_job = text.split("slurm job ")[1].split()[0]
    visible = {
        "squeue": slurm_out(slurm, "squeue", "-h", "--states=all", "-o", "%all"),
        "scontrol show job": slurm_out(slurm, "scontrol", "show", "job", "-dd", slurm_job),
        "batch script": slurm_out(slurm, "scontrol", "write", "batch_script", slurm_job, "-"),
    }
    assert "slurm_driver.py" in visible["batch script"], visible["batch script"]
    for root, _dirs, files in os.walk(os.path.join(slurm_service.home, "slurm")):
        for file_name in files:
            try:
                with open(os.path.join(root, file_name), errors="replace") as handle:
                    visible[os.path.join(root, file_name)] = handle.read()
            except FileNotFoundError:
                continue
    for where, text in visible.items():
        assert secret not in text, f"the secret leaked into {where}"
    open(flag, "w").close()
    job = wait_job(slurm_client, name, timeout=JOB_TIMEOUT)
    assert job["executionState"] == "succeeded", job["executionInfo"]
    assert read_log(slurm_client, name, "stdout.txt").endswith("second line\n")
    tasks = slurm_client.list(slurm_client.job_path("default", "default", name) + "/tasks")
    assert [(t["name"], t["node"], t["exitCode"]) for t in tasks] == [("master", "n1", 0)], tasks


def test_terminate_is_scancel(slurm, slurm_client, hpc, unique, tmp_path):
    name = unique("term")
    submit(
        slurm_client,
        name,
        hpc,
        {"nodeCount": 2, "customToolkitSettings": {"commandLine": waiting_command(str(tmp_path / "never"))}},
    )
    text = wait_for_text(slurm_client, name, "waiting slurm job")
    slurm_job = text.split("slurm job ")[1].split()[0]
    assert slurm_state(slurm, slurm_job) == "RUNNING"
    slurm_client.request("POST", slurm_client.job_path("default", "default", name) + "/terminate")
    job = wait_job(slurm_client, name, timeout=JOB_TIMEOUT)
    assert job["executionState"] == "failed", job
    assert [e["code"] for e in job["executionInfo"]["errors"]] == ["JobTerminated"], job["executionInfo"]
    assert slurm_state(slurm, slurm_job) == "CANCELLED"


def files_holding(root: str, text: str) -> list[str]:
    found = []
    for directory, _dirs, files in os.walk(root):
        for file_name in files:
            try:
                with open(os.path.join(directory, file_name), errors="replace") as handle:
                    if text in handle.read():
                        found.append(os.path.join(directory, file_name))
            except FileNotFoundError:
                continue
    return found


def test_deleting_a_running_job_or_its_cluster_cancels_in_slurm(slurm, slurm_service, slurm_client, unique, tmp_path):
    cluster = unique("doomed")
    make_slurm_cluster(slurm_client, cluster)
    jobs = {}
    for name in (unique("deleted"), unique("orphan")):
        submit(
            slurm_client,
            name,
            cluster,
            {"customToolkitSettings": {"commandLine": waiting_command(str(tmp_path / "x"))}},
        )
        text = wait_for_text(slurm_client, name, "waiting slurm job")
        jobs[name] = (job_view(slurm_client, name), text.split("slurm job ")[1].split()[0])
    deleted, orphan = jobs
    slurm_client.request("DELETE", slurm_client.job_path("default", "default", deleted))
    wait_for(
        lambda: slurm_state(slurm, jobs[deleted][1]) == "CANCELLED",
        "the deleted job's Slurm job to be cancelled",
        timeout=60,
    )
    control = os.path.join(slurm_service.home, "slurm", "jobs", f"{jobs[deleted][0]['uuid']}-1")
    assert not os.path.exists(control), os.listdir(control)
    slurm_client.request("DELETE", slurm_client.cluster_path("default", cluster))
    wait_for(
        lambda: slurm_state(slurm, jobs[orphan][1]) == "CANCELLED", "the cluster's job to be cancelled", timeout=60
    )
    job = job_view(slurm_client, orphan)
    assert job["executionState"] == "failed", job
    assert [e["code"] for e in job["executionInfo"]["errors"]] == ["ClusterDeleted"], job["executionInfo"]


def test_terminate_while_pending_in_slurm(slurm, slurm_service, slurm_client, hpc, unique):
    name = unique("pend")
    secret = f"never-read-{uuid.uuid4().hex}"
    # Three nodes: more than the partition has, so Slurm keeps it pending.
    submit(
        slurm_client,
        name,
        hpc,
        {
            "nodeCount": 3,
            "secrets": [{"name": "TOKEN", "value": secret}],
            "customToolkitSettings": {"commandLine": "true"},
        },
    )
    view = job_view(slurm_client, name)
    wait_for(lambda: our_slurm_jobs(slurm, view), f"{name} to be submitted to Slurm", timeout=60)
    (slurm_job,) = our_slurm_jobs(slurm, view)
    assert slurm_state(slurm, slurm_job) == "PENDING"
    view = wait_for(
        lambda: (lambda v: v if v.get("waitingReason") else None)(job_view(slurm_client, name)),
        "Slurm's reason in the job's waitingReason",
        timeout=60,
    )
    assert view["executionState"] == "queued" and view["waitingReason"].startswith("waiting in slurm: "), view
    (holder,) = files_holding(os.path.join(slurm_service.home, "slurm"), secret)  # only the secrets file, 0600
    assert os.path.basename(holder) == "secrets.json" and os.stat(holder).st_mode & 0o077 == 0, holder
    slurm_client.request("POST", slurm_client.job_path("default", "default", name) + "/terminate")
    job = wait_job(slurm_client, name, timeout=JOB_TIMEOUT)
    assert job["executionState"] == "failed" and slurm_state(slurm, slurm_job) == "CANCELLED", job
    # The job never ran, so nothing read its secrets file: it is gone all the same.
    assert files_holding(os.path.join(slurm_service.home, "slurm"), secret) == []


def test_wall_clock_limit_fails_with_timeout(slurm, slurm_client, hpc, unique):
    name = unique("wall")
    submit(
        slurm_client,
        name,
        hpc,
        {
            "constraints": {"maxWallClockTime": "00:00:04"},
            "customToolkitSettings": {"commandLine": "echo slurm job $SLURM_JOB_ID; sleep 600"},
        },
    )
    text = wait_for_text(slurm_client, name, "slurm job")
    slurm_job = text.split("slurm job ")[1].split()[0]
    # Slurm got the limit too (it keeps minutes: 4 s is 1 minute there).
    assert "TimeLimit=00:01:00" in slurm_out(slurm, "scontrol", "show", "job", slurm_job)
    job = wait_job(slurm_client, name, timeout=JOB_TIMEOUT)
    assert job["executionState"] == "failed", job
    codes = [e["code"] for e in job["executionInfo"]["errors"]]
    assert codes == ["MaxWallClockTimeExceeded"], job["executionInfo"]


def test_failing_task_fails_the_job_with_its_exit_code(slurm_client, hpc, unique):
    name = unique("fail")
    submit(slurm_client, name, hpc, {"customToolkitSettings": {"commandLine": "echo oops >&2; exit 7"}})
    job = wait_job(slurm_client, name, timeout=JOB_TIMEOUT)
    assert job["executionState"] == "failed" and job["executionInfo"]["exitCode"] == 7, job
    assert "exited with code 7" in job["executionInfo"]["errors"][0]["message"]
    assert read_log(slurm_client, name, "stderr.txt") == "oops\n"


def test_node_cap_holds_jobs_back_in_our_queue(slurm, slurm_client, unique, tmp_path):
    cluster = unique("capped")
    make_slurm_cluster(slurm_client, cluster, maxNodesInUse=1)
    flag = str(tmp_path / "go")
    first, second = unique("cap-a"), unique("cap-b")
    submit(slurm_client, first, cluster, {"customToolkitSettings": {"commandLine": waiting_command(flag)}})
    wait_for_text(slurm_client, first, "waiting slurm job")
    submit(slurm_client, second, cluster, {"customToolkitSettings": {"commandLine": "echo second ran"}})
    view = job_view(slurm_client, second)
    assert view["executionState"] == "queued", view
    view = wait_for(
        lambda: (lambda v: v if v.get("waitingReason") else None)(job_view(slurm_client, second)),
        "the cap in the job's waitingReason",
        timeout=60,
    )
    assert "maxNodesInUse of 1" in view["waitingReason"], view
    # Slurm has free nodes, but our cap keeps the second job out of Slurm until the first ends.
    for _ in range(10):
        assert our_slurm_jobs(slurm, view) == [], "the capped job was submitted to Slurm"
        time.sleep(0.5)
    open(flag, "w").close()
    for name in (first, second):
        job = wait_job(slurm_client, name, timeout=JOB_TIMEOUT)
        assert job["executionState"] == "succeeded", job["executionInfo"]
    assert read_log(slurm_client, second, "stdout.txt") == "second ran\n"


# -- failures -----------------------------------------------------------------------------------------


CHECKPOINTING = (
    'if [ -f "$AZ_BATCHAI_OUTPUT_CKPT/state" ]; then '
    'echo "resumed from $(cat $AZ_BATCHAI_OUTPUT_CKPT/state) on attempt $AZ_BATCHAI_JOB_ATTEMPT"; '
    'else echo step-7 > "$AZ_BATCHAI_OUTPUT_CKPT/state"; echo checkpointed; sleep 600; fi'
)


def test_node_lost_mid_job_requeues_and_the_retry_succeeds(slurm, slurm_client, hpc, unique):
    name = unique("lost")
    submit(
        slurm_client,
        name,
        hpc,
        {
            "nodeCount": 2,
            "maxRetries": 1,
            "outputDirectories": [{"id": "CKPT", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external"}],
            "customToolkitSettings": {"commandLine": CHECKPOINTING},
        },
    )
    wait_for_text(slurm_client, name, "checkpointed")
    killed = slurm.kill("slurmd-n2", signal.SIGKILL)
    assert killed, "slurmd of n2 was not running"
    try:
        wait_for(lambda: job_view(slurm_client, name)["attempt"] == 2, f"{name} to be requeued", timeout=120)
    finally:
        slurm.start_node("n2")
    job = wait_job(slurm_client, name, timeout=JOB_TIMEOUT)
    assert job["executionState"] == "succeeded", job["executionInfo"]
    assert job["retriesUsed"] == 1, job
    errors = job["executionInfo"]["errors"]
    assert errors and errors[0]["code"] == "AttemptFailed" and "NODE_FAIL" in errors[0]["message"], errors
    assert read_log(slurm_client, name, "stdout.txt") == "resumed from step-7 on attempt 2\n"
    assert read_log(slurm_client, name, "attempt-1/stdout.txt") == "checkpointed\n"


def test_service_restart_reattaches_by_slurm_job_id(slurm, tmp_path, unique):
    service = start_slurm_service(tmp_path / "svc", slurm)
    try:
        client = Client(service.url, TOKEN)
        cluster = unique("restart")
        make_slurm_cluster(client, cluster)
        flag = str(tmp_path / "go")
        running, pending = unique("running"), unique("pending")
        submit(
            client, running, cluster, {"nodeCount": 2, "customToolkitSettings": {"commandLine": waiting_command(flag)}}
        )
        wait_for_text(client, running, "waiting slurm job")
        submit(client, pending, cluster, {"nodeCount": 1, "customToolkitSettings": {"commandLine": "echo after"}})
        views = {name: job_view(client, name) for name in (running, pending)}
        wait_for(lambda: our_slurm_jobs(slurm, views[pending]), "the second job to reach Slurm", timeout=60)
        before = {name: our_slurm_jobs(slurm, view) for name, view in views.items()}
        service.kill()
        open(flag, "w").close()  # the first job ends while the service is down
        client = service.start()
        for name in (running, pending):
            job = wait_job(client, name, timeout=JOB_TIMEOUT)
            assert job["executionState"] == "succeeded", job["executionInfo"]
            assert job["attempt"] == 1, job
        # Re-attached, not resubmitted: still one Slurm job each.
        assert {name: our_slurm_jobs(slurm, view) for name, view in views.items()} == before
        assert read_log(client, running, "stdout.txt").endswith("released\n")
    finally:
        stop_slurm_service(service)


# -- the CLI ------------------------------------------------------------------------------------------


def test_cli_creates_a_slurm_cluster_on_a_partition(slurm_service, slurm_client, unique):
    from helpers.cli import cli, ok

    name = unique("cli-hpc")
    created = json.loads(
        ok(
            cli(
                slurm_service,
                "-o",
                "json",
                "cluster",
                "create",
                name,
                "--backend",
                "slurm",
                "--partition",
                "debug",
                "--max-nodes-in-use",
                "2",
                "--sbatch-option=--comment=cli",
            )
        )
    )
    assert created["backend"] == "slurm", created
    assert created["properties"]["backendOptions"] == {
        "partition": "debug",
        "maxNodesInUse": 2,
        "sbatchOptions": ["--comment=cli"],
    }, created

    def listed():
        nodes = json.loads(ok(cli(slurm_service, "-o", "json", "cluster", "node", "list", "-n", name)))
        return nodes if {n["nodeId"] for n in nodes} == {"n1", "n2"} else None

    wait_for(listed, "the partition's nodes in `cluster node list`", timeout=60)
    refused = cli(slurm_service, "cluster", "resize", "-n", name, "-t", "4")
    assert refused.returncode != 0, refused
    assert "neither resized nor auto-scaled" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr


def test_notebook_workspace_api_makes_a_slurm_cluster(slurm_client, unique):
    from batchai_jupyter.notebook.workspace import Workspace

    ws = Workspace("default", client=slurm_client)
    name = unique("nb-hpc")
    created = ws.clusters.create(name, {"backendOptions": {"partition": "debug"}}, backend="slurm")
    assert created["backend"] == "slurm", created
    wait_for(
        lambda: {n["nodeId"] for n in ws.clusters.nodes(name)} == {"n1", "n2"},
        "the partition's nodes through the notebook API",
        timeout=60,
    )
