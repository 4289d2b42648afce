"""Failures on real sshd hosts: a host that dies mid-job costs a retry, not the job (which resumes
from its checkpoint); the host returns to idle when it is back; a restarted service re-attaches to
running tasks instead of losing or repeating them."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import time

import pytest

from helpers.api import job_folder, read_log, submit, wait_job
from helpers.service import ServiceProcess
from helpers.ssh import PYTHON, create_ssh_cluster, put_in_datastore
from helpers.tools import require_tool
from helpers.waits import wait_for

JOB_TIMEOUT = 180.0

# Rank 0 counts steps into a checkpoint in the job's checkpoint directory and resumes from it.
CHECKPOINTED = """
    import json, os, sys, time
    rank = int(os.environ["RANK"])
    attempt = int(os.environ["AZ_BATCHAI_JOB_ATTEMPT"])
    checkpoint = os.path.join(os.environ["AZ_BATCHAI_CHECKPOINT_DIR"], "step.json")
    start = 0
    if os.path.exists(checkpoint):
        with open(checkpoint) as handle:
            start = json.load(handle)["step"]
    print(f"attempt {attempt} rank {rank} resumes at step {start}", flush=True)
    steps = int(sys.argv[1])
    for step in range(start, steps):
        time.sleep(0.25)
        if rank == 0:
            with open(checkpoint + ".tmp", "w") as handle:
                json.dump({"step": step + 1}, handle)
            os.replace(checkpoint + ".tmp", checkpoint)
    print(f"attempt {attempt} rank {rank} done", flush=True)
"""


@pytest.fixture(scope="module")
def hosts(make_ssh_hosts):
    return make_ssh_hosts(3)


@pytest.fixture
def service(tmp_path):
    process = ServiceProcess(str(tmp_path / "home"), str(tmp_path / "runtime"))
    client = process.start()
    yield process, client
    process.stop()


def _checkpoint_step(service, client, job: str) -> int:
    """The step in the job's checkpoint as the service holds it (collected from the host)."""
    path = os.path.join(job_folder(service.home, client, job), "checkpoints", "step.json")
    try:
        with open(path) as handle:
            return json.load(handle)["step"]
    except (OSError, ValueError):
        return 0


def _task_hosts(client, job: str) -> dict[str, str]:
    tasks = client.list(client.job_path("default", "default", job) + "/tasks")
    return {t["name"]: t["ip"] for t in tasks if t["attempt"] == 1}


def test_host_killed_mid_job_requeues_and_resumes_from_checkpoint(service, hosts):
    process, client = service
    create_ssh_cluster(client, "fail", hosts)
    scripts = put_in_datastore(process.home, "inputs/ckpt", {"ckpt.py": CHECKPOINTED})
    submit(
        client,
        "resume",
        "fail",
        {
            "nodeCount": 2,
            "maxRetries": 1,
            "inputDirectories": [{"id": "SCRIPTS", "path": scripts}],
            "pyTorchSettings": {"pythonScriptFilePath": "$AZ_BATCHAI_INPUT_SCRIPTS/ckpt.py", "commandLineArgs": "60"},
        },
    )
    # The checkpoint comes back to the datastore while the job runs.
    wait_for(lambda: _checkpoint_step(process, client, "resume") >= 8, "a checkpoint to be collected", timeout=120)
    master_ip = _task_hosts(client, "resume")["0"]
    victim = next(h for h in hosts.hosts if h.address == master_ip)
    killed_at = time.monotonic()
    hosts.kill(victim)
    requeued = wait_for(
        lambda: (lambda j: j if j["attempt"] == 2 else None)(client.job("default", "default", "resume")),
        "the job to be requeued",
        timeout=60,
        interval=0.05,
    )
    seconds = time.monotonic() - killed_at
    print(f"\nhost killed -> job requeued in {seconds:.2f} s")
    assert requeued["retriesUsed"] == 1
    job = wait_job(client, "resume", timeout=JOB_TIMEOUT)
    assert job["executionState"] == "succeeded", job["executionInfo"]
    errors = " ".join(e["message"] for e in job["executionInfo"]["errors"])
    assert victim.address in errors and ("stopped answering" in errors or "cannot reach" in errors), errors
    # The second attempt ran on the two live hosts and resumed where the checkpoint stopped.
    out = read_log(client, "resume", "stdout-0.txt")
    resumed_at = int(out.split("attempt 2 rank 0 resumes at step ")[1].split()[0])
    assert resumed_at >= 8, out
    assert "attempt 2 rank 0 done" in out
    assert _checkpoint_step(process, client, "resume") == 60
    second = {
        t["ip"] for t in client.list(client.job_path("default", "default", "resume") + "/tasks") if t["attempt"] == 2
    }
    assert victim.address not in second and len(second) == 2, second
    # The dead host's node is unusable and says why; once the host is back it is idle again.
    nodes = {n["ipAddress"]: n for n in client.list(client.cluster_path("default", "fail") + "/nodes")}
    assert nodes[victim.address]["state"] == "unusable", nodes[victim.address]
    why = nodes[victim.address]["errors"][0]["message"]
    assert "stopped answering" in why or "cannot reach" in why, nodes[victim.address]
    hosts.start(victim)
    wait_for(
        lambda: (
            {n["ipAddress"]: n for n in client.list(client.cluster_path("default", "fail") + "/nodes")}[victim.address][
                "state"
            ]
            == "idle"
        ),
        "the host's node to be idle again",
        timeout=60,
    )
    # Even when it lost its node root (reinstalled), the host runs tasks again: the wrapper is resent.
    shutil.rmtree(os.path.join(victim.home, "batchai-node"))
    scripts = put_in_datastore(
        process.home, "inputs/hello3", {"hello.py": "print('hello from rank', __import__('os').environ['RANK'])\n"}
    )
    submit(
        client,
        "after",
        "fail",
        {
            "nodeCount": 3,
            "inputDirectories": [{"id": "SCRIPTS", "path": scripts}],
            "pyTorchSettings": {"pythonScriptFilePath": "$AZ_BATCHAI_INPUT_SCRIPTS/hello.py"},
        },
    )
    job = wait_job(client, "after", timeout=JOB_TIMEOUT)
    assert job["executionState"] == "succeeded", job["executionInfo"]
    assert victim.address in {t["ip"] for t in client.list(client.job_path("default", "default", "after") + "/tasks")}


def test_service_restart_mid_job_reattaches(service, hosts):
    process, client = service
    create_ssh_cluster(client, "again", hosts, members=hosts.hosts[:1])
    scripts = put_in_datastore(
        process.home,
        "inputs/slow",
        {
            "slow.py": """
        import os, time
        marker = os.path.join(os.environ["AZ_BATCHAI_OUTPUT_OUT"], "starts")
        with open(marker, "a") as handle:
            handle.write("start\\n")
        for i in range(24):
            print("line", i, flush=True)
            time.sleep(0.25)
    """
        },
    )
    submit(
        client,
        "survivor",
        "again",
        {
            "nodeCount": 1,
            "inputDirectories": [{"id": "SCRIPTS", "path": scripts}],
            "outputDirectories": [{"id": "OUT", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external"}],
            "customToolkitSettings": {"commandLine": f"{PYTHON} $AZ_BATCHAI_INPUT_SCRIPTS/slow.py"},
        },
    )
    wait_for(lambda: "line 2" in read_log(client, "survivor", "stdout.txt"), "the job's first lines", timeout=90)
    process.kill()
    time.sleep(1.5)
    client = process.start()
    job = wait_job(client, "survivor", timeout=JOB_TIMEOUT)
    assert job["executionState"] == "succeeded" and job["attempt"] == 1, job["executionInfo"]
    out = read_log(client, "survivor", "stdout.txt")
    assert [line for line in out.splitlines()] == [f"line {i}" for i in range(24)], out  # no gap, no repeat
    assert read_log(client, "survivor", "starts", "OUT") == "start\n", "the task must not start twice"


def _task_recorded(store: str, job: str) -> str | None:
    """The run directory of the job's task once the service recorded it (before it hands it to the host)."""
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute(
                "SELECT run_dir FROM tasks JOIN jobs ON jobs.id = tasks.job_id WHERE jobs.name = ?", (job,)
            )
            found = row.fetchone()
    except sqlite3.OperationalError:  # the store is being written: not yet
        return None
    return found[0] if found else None


def test_a_service_killed_before_handing_a_task_to_the_host_hands_it_over_after_its_restart(service, hosts):
    """The window between recording a task and the host's wrapper taking it up: a 30 MB input is staged to
    the host in it. Killed there, the restarted service asks the host (`task_started`), hands the task over
    again, and it runs once, instead of the job ending TaskLost."""
    process, client = service
    host = hosts.hosts[2]
    create_ssh_cluster(client, "handover", hosts, members=[host])
    big = put_in_datastore(process.home, "inputs/big", {"big.bin": "x" * 30_000_000})
    submit(
        client,
        "handed",
        "handover",
        {
            "nodeCount": 1,
            "inputDirectories": [{"id": "BIG", "path": big}],
            "customToolkitSettings": {"commandLine": "test -s $AZ_BATCHAI_INPUT_BIG/big.bin && echo ran"},
        },
    )
    store = os.path.join(process.home, "batchai.db")
    run_dir = wait_for(lambda: _task_recorded(store, "handed"), "the task to be recorded", interval=0.001)
    process.kill()
    time.sleep(1)  # what the killed service had sent the host already has run
    taken = hosts.run_on(host, f"ls -A {shlex.quote(run_dir)} 2>/dev/null || true").split()
    assert not {"pid", "exit", "task.claimed"} & set(taken), f"the kill came after the hand-over: {taken}"
    client = process.start()
    job = wait_job(client, "handed", timeout=JOB_TIMEOUT)
    assert job["executionState"] == "succeeded" and job["attempt"] == 1, job["executionInfo"]
    assert read_log(client, "handed", "stdout.txt") == "ran\n"


def test_a_job_that_fills_the_hosts_disk_ends_with_its_exit_code_and_the_word(service, hosts):
    """The node's root on a 4 MB tmpfs of the host: a task that fills it ends with its own exit code and
    "no space left on <its directory>" (the wrapper's exit record, in the room it set aside), not TaskLost."""
    require_tool("nsenter", "apt-get install util-linux")
    process, client = service
    host = hosts.hosts[1]
    small = os.path.join(os.path.realpath(os.path.expanduser("~")), "small-disk")
    in_host = ["nsenter", "-t", str(host.process.pid), "-m", "--", "sh", "-c"]  # the host's own mounts
    subprocess.run([*in_host, f"mkdir -p {small} && mount -t tmpfs -o size=4m tmpfs {small}"], check=True)
    try:
        create_ssh_cluster(client, "small", hosts, members=[host], root="~/small-disk/node")
        submit(
            client,
            "filler",
            "small",
            {"nodeCount": 1, "customToolkitSettings": {"commandLine": "head -c 20000000 /dev/zero"}},
        )
        job = wait_job(client, "filler", timeout=JOB_TIMEOUT)
        assert (job["executionState"], job["executionInfo"]["exitCode"]) == ("failed", 1), job
        failure = job["executionInfo"]["errors"][0]
        assert failure["code"] == "JobFailed" and f"(no space left on {small}/node/" in failure["message"], failure
    finally:
        subprocess.run([*in_host, f"umount -l {small}"], check=True)
