"""End-to-end scheduling: priority queue, gang scheduling, EASY backfill, wall-clock limits,
terminate/delete, retries, node setup, job preparation, resize and auto-scale.

Everything goes through the REST API of a real `batchai serve` (one per module; each test uses
its own uniquely named clusters and jobs). Ordering is made deterministic with gate files: a job
blocks in `while [ ! -f GATE ]` until the test creates the file.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from batchai_jupyter.errors import BatchAIError
from helpers.api import make_cluster, read_log, submit, wait_job
from helpers.gates import append, lines, open_gate, wait_gate
from helpers.waits import wait_for

LEGACY_SCHEMA = "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-03-01/job.json"
# Long enough to observe the engine (it wakes at least every 0.5 s) deciding several times.
OBSERVE_SECONDS = 1.5


# -- helpers ---------------------------------------------------------------------------------------


def cluster(client, name: str) -> dict:
    return client.get(client.cluster_path("default", name))


def counts(client, name: str) -> dict:
    return cluster(client, name)["nodeStateCounts"]


def nodes(client, name: str) -> list[dict]:
    return client.list(client.cluster_path("default", name) + "/nodes")


def job(client, name: str) -> dict:
    return client.job("default", "default", name)


def job_path(client, name: str) -> str:
    return client.job_path("default", "default", name)


def job_files(client, name: str, path: str = ".") -> list[dict]:
    return client.list(job_path(client, name) + "/files", outputdirectoryid="stdouterr", path=path)


def wait_state(client, name: str, state: str, timeout: float = 30.0) -> dict:
    return wait_for(
        lambda: (lambda j: j if j["executionState"] == state else None)(job(client, name)),
        f"job {name} to be {state}",
        timeout,
    )


def wait_counts(client, name: str, timeout: float = 30.0, **expected) -> dict:
    def check():
        view = cluster(client, name)
        got = view["nodeStateCounts"]
        return view if all(got[key] == value for key, value in expected.items()) else None

    return wait_for(check, f"cluster {name} to have {expected}", timeout)


def stays(condition, what: str, seconds: float = OBSERVE_SECONDS) -> None:
    """Asserts `condition()` holds on every check for `seconds` (a bounded negative check)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), what
        time.sleep(0.1)


def error_codes(view: dict) -> list[str]:
    return [e["code"] for e in view["executionInfo"]["errors"]]


def process_alive(pid: int) -> bool:
    """True when the process exists and is not a zombie (exited processes may wait for a reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pid_of(argv: list[str]) -> int | None:
    """The pid of the process running `argv`, as this machine numbers it."""
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if entry.isdigit() and handle.read().split(b"\0")[:-1] == [word.encode() for word in argv]:
                    return int(entry)
        except OSError:
            pass
    return None


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def run_dirs(home: str, cluster_name: str, job_uuid: str) -> list[str]:
    """The runtime directories (pid, heartbeat, exit) of a job's tasks on a local cluster's nodes."""
    root = os.path.join(home, "nodes", "default", cluster_name)
    found = []
    for node in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        run = os.path.join(root, node, "run")
        for entry in sorted(os.listdir(run)) if os.path.isdir(run) else []:
            if entry.startswith(job_uuid):
                found.append(os.path.join(run, entry))
    return found


@pytest.fixture
def home(shared_service) -> str:
    return shared_service.home


# -- priority, FIFO, legacy integer priority ---------------------------------------------------------


def test_priority_order_and_fifo_within_priority(shared_client, unique, tmp_path):
    client = shared_client
    c = unique("prio")
    make_cluster(client, c, nodes=1)
    gate, order = tmp_path / "gate", tmp_path / "order"
    blocker = unique("blocker")
    submit(
        client, blocker, c, {"customToolkitSettings": {"commandLine": f"{wait_gate(gate)}; {append(order, 'blocker')}"}}
    )
    wait_state(client, blocker, "running")

    names = {}

    def native(label: str, priority: str | None) -> None:
        names[label] = unique(label)
        spec = {"customToolkitSettings": {"commandLine": append(order, label)}}
        if priority:
            spec["schedulingPriority"] = priority
        submit(client, names[label], c, spec)

    def legacy(label: str, priority: int) -> None:
        # A 2018-03-01 job.json: integer `priority`, cluster by ARM id, stdOutErrPathPrefix required.
        names[label] = unique(label)
        client.create_job(
            "default",
            "default",
            {
                "$schema": LEGACY_SCHEMA,
                "properties": {
                    "cluster": {
                        "id": f"/subscriptions/0000/resourceGroups/rg/providers/Microsoft.BatchAI/clusters/{c}"
                    },
                    "nodeCount": 1,
                    "priority": priority,
                    "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
                    "customToolkitSettings": {"commandLine": append(order, label)},
                },
            },
            names[label],
        )

    native("low-a", "low")
    native("normal-a", None)  # the default is normal
    native("high-a", "high")
    legacy("legacy-top", 500)
    native("low-b", "low")
    native("normal-b", "normal")
    native("high-b", "high")
    legacy("legacy-bottom", -500)
    expected = ["legacy-top", "high-a", "high-b", "normal-a", "normal-b", "low-a", "low-b", "legacy-bottom"]

    views = {label: job(client, name) for label, name in names.items()}
    assert all(v["executionState"] == "queued" for v in views.values()), views
    assert views["legacy-top"]["schedulingPriority"] == 500
    assert views["legacy-bottom"]["schedulingPriority"] == -500
    assert views["normal-a"]["schedulingPriority"] == "normal"
    assert [label for label in sorted(views, key=lambda k: views[k]["queuePosition"])] == expected
    assert sorted(v["queuePosition"] for v in views.values()) == list(range(1, 9))

    open_gate(gate)
    for label, name in names.items():
        assert wait_job(client, name, timeout=60)["executionState"] == "succeeded", label
    assert lines(order) == ["blocker", *expected]
    starts = [job(client, names[label])["executionInfo"]["startTime"] for label in expected]
    assert starts == sorted(starts)


# -- gang scheduling ----------------------------------------------------------------------------------


def test_gang_job_waits_for_all_its_nodes(shared_client, unique, tmp_path):
    client = shared_client
    c = unique("gang")
    make_cluster(client, c, nodes=2)
    gate_small, gate_gang, ran = tmp_path / "small", tmp_path / "gang", tmp_path / "ran"
    small, gang = unique("small"), unique("gang")
    submit(client, small, c, {"customToolkitSettings": {"commandLine": wait_gate(gate_small)}})
    wait_state(client, small, "running")
    submit(
        client,
        gang,
        c,
        {
            "nodeCount": 2,
            "customToolkitSettings": {
                "commandLine": f"{append(ran, 'gang')}; echo $AZ_BATCH_HOST_LIST; {wait_gate(gate_gang)}"
            },
        },
    )

    wait_counts(client, c, idleNodeCount=1, runningNodeCount=1)
    stays(
        lambda: job(client, gang)["executionState"] == "queued" and counts(client, c)["idleNodeCount"] == 1,
        "a 2-node job must not start while only one node is idle",
    )
    assert lines(ran) == []
    assert job(client, gang)["queuePosition"] == 1

    open_gate(gate_small)
    assert wait_job(client, small)["executionState"] == "succeeded"
    running = wait_state(client, gang, "running")
    assert running["executionInfo"]["startTime"] >= job(client, small)["executionInfo"]["endTime"]
    assigned = client.list(job_path(client, gang) + "/nodes")
    assert len(assigned) == 2 and len({n["nodeId"] for n in assigned}) == 2
    assert counts(client, c) == {
        "idleNodeCount": 0,
        "runningNodeCount": 2,
        "preparingNodeCount": 0,
        "unusableNodeCount": 0,
        "leavingNodeCount": 0,
    }
    assert cluster(client, c)["allocationState"] == "steady"
    open_gate(gate_gang)
    done = wait_job(client, gang)
    assert done["executionState"] == "succeeded"
    hosts = read_log(client, gang, "stdout.txt").strip().split(",")
    assert sorted(hosts) == sorted(n["ipAddress"] for n in assigned)
    assert lines(ran) == ["gang"]
    wait_counts(client, c, idleNodeCount=2, runningNodeCount=0)


# -- EASY backfill ------------------------------------------------------------------------------------


def test_backfill_never_delays_the_head_job(shared_client, unique, tmp_path):
    client = shared_client
    c = unique("backfill")
    make_cluster(client, c, nodes=2)
    gate, order = tmp_path / "gate", tmp_path / "order"
    first, head, long_small, short_small = unique("first"), unique("head"), unique("long"), unique("short")
    # The running 1-node job promises to end within 60 s: the head's shadow time is at most then.
    submit(
        client,
        first,
        c,
        {
            "constraints": {"maxWallClockTime": "0:01:00"},
            "customToolkitSettings": {"commandLine": f"{wait_gate(gate)}; {append(order, 'first')}"},
        },
    )
    wait_state(client, first, "running")
    submit(client, head, c, {"nodeCount": 2, "customToolkitSettings": {"commandLine": append(order, "head")}})
    # Would run past the head's shadow time: it must not take the node the head holds.
    submit(
        client,
        long_small,
        c,
        {
            "constraints": {"maxWallClockTime": "0:10:00"},
            "customToolkitSettings": {"commandLine": append(order, "long")},
        },
    )
    # Sure to end before the head could start: it may borrow the held node.
    submit(
        client,
        short_small,
        c,
        {
            "constraints": {"maxWallClockTime": "0:00:20"},
            "customToolkitSettings": {"commandLine": append(order, "short")},
        },
    )

    # The short job was submitted after the long one, so by the time it has run the scheduler has
    # passed over the long job (and the head) while a node was idle.
    assert wait_job(client, short_small)["executionState"] == "succeeded"
    assert job(client, long_small)["executionState"] == "queued"
    assert job(client, head)["executionState"] == "queued"
    stays(
        lambda: job(client, long_small)["executionState"] == "queued",
        "a backfill job running past the head's shadow time must not start",
    )
    assert lines(order) == ["short"]

    open_gate(gate)
    for name in (first, head, long_small):
        assert wait_job(client, name)["executionState"] == "succeeded", name
    assert lines(order) == ["short", "first", "head", "long"]
    assert job(client, long_small)["executionInfo"]["startTime"] >= job(client, head)["executionInfo"]["startTime"]


# -- max wall-clock time ------------------------------------------------------------------------------


def test_max_wall_clock_time_kills_the_job(shared_client, unique):
    client = shared_client
    c = unique("wall")
    make_cluster(client, c, nodes=1)
    name = unique("sleeper")
    submit(
        client,
        name,
        c,
        {
            "constraints": {"maxWallClockTime": "0:00:02"},
            "customToolkitSettings": {"commandLine": "echo started; sleep 60; echo never"},
        },
    )
    done = wait_job(client, name, timeout=30)
    assert done["executionState"] == "failed"
    errors = done["executionInfo"]["errors"]
    assert [e["code"] for e in errors] == ["MaxWallClockTimeExceeded"], errors
    assert "maximum wall-clock time of 0:00:02" in errors[0]["message"]
    assert "killed" in errors[0]["message"]
    assert read_log(client, name, "stdout.txt") == "started\n"
    wait_counts(client, c, idleNodeCount=1, runningNodeCount=0)
    assert nodes(client, c)[0]["jobId"] is None


# -- terminate and delete -----------------------------------------------------------------------------


def test_terminate_queued_and_running_jobs(shared_client, unique, tmp_path, home):
    client = shared_client
    c = unique("term")
    make_cluster(client, c, nodes=1)
    running, queued = unique("running"), unique("queued")
    marker, ran = f"300.{uuid.uuid4().int % 10**6}", tmp_path / "ran"  # a sleep no other process runs
    submit(
        client,
        running,
        c,
        {"customToolkitSettings": {"commandLine": f"exec sleep {marker}"}},
    )
    submit(client, queued, c, {"customToolkitSettings": {"commandLine": append(ran, "queued")}})
    wait_state(client, running, "running")
    assert job(client, queued)["executionState"] == "queued"

    terminated = client.request("POST", job_path(client, queued) + "/terminate")
    assert terminated["executionState"] == "failed"
    assert error_codes(terminated) == ["JobTerminated"]

    # Found from here: a task sees its own pids only (the local backend's sandbox has a PID namespace).
    sleep_pid = wait_for(lambda: pid_of(["sleep", marker]), "the job's sleep")
    [run_dir] = run_dirs(home, c, job(client, running)["uuid"])
    wrapper_pid = int(open(os.path.join(run_dir, "pid")).read())
    assert process_alive(sleep_pid) and group_members(wrapper_pid)

    client.request("POST", job_path(client, running) + "/terminate")
    done = wait_job(client, running, timeout=30)
    assert done["executionState"] == "failed"
    assert error_codes(done) == ["JobTerminated"]
    assert not process_alive(sleep_pid), "the terminated job's process is still running"
    assert group_members(wrapper_pid) == [], "processes of the terminated job are still running"
    wait_counts(client, c, idleNodeCount=1, runningNodeCount=0)

    # The queued job was terminated before it ran, and it never runs later either.
    after = unique("after")
    submit(client, after, c, {"customToolkitSettings": {"commandLine": append(ran, "after")}})
    assert wait_job(client, after)["executionState"] == "succeeded"
    assert lines(ran) == ["after"]
    assert job(client, queued)["executionState"] == "failed"


def test_delete_queued_running_and_finished_jobs(shared_client, unique, tmp_path, home):
    client = shared_client
    c = unique("del")
    make_cluster(client, c, nodes=1)
    finished, running, queued = unique("finished"), unique("running"), unique("queued")
    marker, ran = f"300.{uuid.uuid4().int % 10**6}", tmp_path / "ran"  # a sleep no other process runs
    submit(client, finished, c, {"customToolkitSettings": {"commandLine": "echo done"}})
    assert wait_job(client, finished)["executionState"] == "succeeded"
    submit(
        client,
        running,
        c,
        {"customToolkitSettings": {"commandLine": f"exec sleep {marker}"}},
    )
    submit(client, queued, c, {"customToolkitSettings": {"commandLine": append(ran, "queued")}})
    wait_state(client, running, "running")
    # Found from here: a task sees its own pids only (the local backend's sandbox has a PID namespace).
    sleep_pid = wait_for(lambda: pid_of(["sleep", marker]), "the job's sleep")

    client.request("DELETE", job_path(client, queued))
    client.request("DELETE", job_path(client, running))
    client.request("DELETE", job_path(client, finished))
    for name in (finished, running, queued):
        with pytest.raises(BatchAIError) as missing:
            job(client, name)
        assert missing.value.status == 404
    listed = {j["name"] for j in client.list("workspaces/default/experiments/default/jobs")}
    assert not listed & {finished, running, queued}
    wait_for(lambda: not process_alive(sleep_pid), "the deleted job's process to end", timeout=10)
    wait_counts(client, c, idleNodeCount=1, runningNodeCount=0)
    stays(lambda: lines(ran) == [], "a deleted queued job must never run")


# -- retries ------------------------------------------------------------------------------------------


def test_retry_after_a_failed_attempt(shared_client, unique, tmp_path):
    client = shared_client
    c = unique("retry")
    make_cluster(client, c, nodes=1)
    marker = tmp_path / "tried"
    flaky = (
        f"if [ -f {marker} ]; then echo attempt-two; exit 0; "
        f"else touch {marker}; echo attempt-one; echo broken >&2; exit 7; fi"
    )
    name = unique("flaky")
    submit(client, name, c, {"maxRetries": 1, "customToolkitSettings": {"commandLine": flaky}})
    done = wait_job(client, name)
    assert done["executionState"] == "succeeded", done
    assert done["attempt"] == 2 and done["retriesUsed"] == 1 and done["executionInfo"]["exitCode"] == 0
    assert read_log(client, name, "stdout.txt") == "attempt-two\n"
    archived = {f["name"]: f for f in job_files(client, name, "attempt-1")}
    assert {"stdout.txt", "stderr.txt"} <= set(archived), archived
    assert read_log(client, name, "attempt-1/stdout.txt") == "attempt-one\n"
    assert read_log(client, name, "attempt-1/stderr.txt") == "broken\n"
    top = {f["name"]: f["fileType"] for f in job_files(client, name)}
    assert top.get("attempt-1") == "directory", top

    marker.unlink()
    once = unique("once")
    submit(client, once, c, {"maxRetries": 0, "customToolkitSettings": {"commandLine": flaky}})
    failed = wait_job(client, once)
    assert failed["executionState"] == "failed"
    assert failed["attempt"] == 1 and failed["executionInfo"]["exitCode"] == 7
    assert error_codes(failed) == ["JobFailed"]
    assert "exited with code 7" in failed["executionInfo"]["errors"][0]["message"]


# -- node setup task ------------------------------------------------------------------------------------


def test_failing_setup_task_makes_the_node_unusable(shared_client, unique):
    client = shared_client
    c = unique("badsetup")
    client.create_cluster(
        "default", {"backend": "local", "nodeCount": 1, "setupTask": "echo setting up; echo no-driver >&2; exit 4"}, c
    )
    view = wait_counts(client, c, unusableNodeCount=1)
    assert view["nodeStateCounts"]["idleNodeCount"] == 0
    [node] = nodes(client, c)
    assert node["state"] == "unusable"
    [problem] = node["errors"]
    assert problem["code"] == "NodeSetupFailed"
    assert f"stderr-setup-{node['nodeId']}.txt" in problem["message"]
    assert "code 4" in problem["message"]

    files = {f["name"] for f in client.list(client.cluster_path("default", c) + "/files")}
    assert {f"stdout-setup-{node['nodeId']}.txt", f"stderr-setup-{node['nodeId']}.txt"} <= files, files

    def content(path: str) -> bytes:
        return client.request(
            "GET", client.cluster_path("default", c) + "/files/content", params={"path": path}, raw=True
        ).content

    assert content(f"stderr-setup-{node['nodeId']}.txt") == b"no-driver\n"
    assert content(f"stdout-setup-{node['nodeId']}.txt") == b"setting up\n"

    # Nothing runs on an unusable node.
    name = unique("stuck")
    submit(client, name, c, {"customToolkitSettings": {"commandLine": "true"}})
    stays(lambda: job(client, name)["executionState"] == "queued", "a job must not run on an unusable node")


def test_setup_task_runs_once_per_node_before_it_is_idle(shared_client, unique, tmp_path):
    client = shared_client
    c = unique("setup")
    gate, runs, ran = tmp_path / "gate", tmp_path / "setup-runs", tmp_path / "ran"
    setup = f"{append(runs, '$AZ_BATCHAI_NODE_NAME')}; {wait_gate(gate)}"
    client.create_cluster("default", {"backend": "local", "nodeCount": 2, "setupTask": setup}, c)
    view = wait_counts(client, c, preparingNodeCount=2)
    assert view["nodeStateCounts"]["idleNodeCount"] == 0
    assert view["allocationState"] == "resizing"
    name = unique("waits")
    submit(client, name, c, {"customToolkitSettings": {"commandLine": append(ran, "job")}})
    wait_for(lambda: len(lines(runs)) == 2, "both setup tasks to start")
    stays(lambda: job(client, name)["executionState"] == "queued", "a job must not run on a preparing node")
    assert lines(ran) == []

    open_gate(gate)
    view = wait_counts(client, c, idleNodeCount=2, preparingNodeCount=0)
    assert view["allocationState"] == "steady"
    assert wait_job(client, name)["executionState"] == "succeeded"
    second = unique("again")
    submit(client, second, c, {"nodeCount": 2, "customToolkitSettings": {"commandLine": append(ran, "job2")}})
    assert wait_job(client, second)["executionState"] == "succeeded"
    assert sorted(lines(runs)) == sorted(n["nodeId"] for n in nodes(client, c))
    assert lines(ran) == ["job", "job2"]


# -- job preparation ----------------------------------------------------------------------------------


def test_job_preparation_failure_names_its_log(shared_client, unique, tmp_path):
    client = shared_client
    c = unique("prep")
    make_cluster(client, c, nodes=1)
    ran = tmp_path / "ran"
    name = unique("prepfail")
    submit(
        client,
        name,
        c,
        {
            "jobPreparation": {"commandLine": "echo preparing; echo no-such-package >&2; exit 2"},
            "customToolkitSettings": {"commandLine": append(ran, "main")},
        },
    )
    done = wait_job(client, name)
    assert done["executionState"] == "failed"
    assert done["executionInfo"]["exitCode"] == 2
    [failure] = done["executionInfo"]["errors"]
    assert failure["code"] == "JobPreparationFailed"
    assert "stdout-job_prep" in failure["message"] and "stderr-job_prep" in failure["message"]
    files = {f["name"] for f in job_files(client, name)}
    stderr_name = next(f for f in files if f.startswith("stderr-job_prep"))
    assert stderr_name in failure["message"]
    assert read_log(client, name, stderr_name) == "no-such-package\n"
    assert lines(ran) == [], "the job's command must not run when its preparation failed"
    wait_counts(client, c, idleNodeCount=1)

    ok = unique("prepok")
    submit(
        client,
        ok,
        c,
        {
            "jobPreparation": {"commandLine": append(ran, "prep")},
            "customToolkitSettings": {"commandLine": append(ran, "main")},
        },
    )
    assert wait_job(client, ok)["executionState"] == "succeeded"
    assert lines(ran) == ["prep", "main"]


# -- resize ---------------------------------------------------------------------------------------------


def _resize(client, name: str, target: int, option: str = "requeue") -> dict:
    return client.scale_cluster(
        "default", name, {"manual": {"targetNodeCount": target, "nodeDeallocationOption": option}}
    )


def test_resize_grows_a_cluster(shared_client, unique):
    client = shared_client
    c = unique("grow")
    make_cluster(client, c, nodes=1)
    assert cluster(client, c)["allocationState"] == "steady"
    resized = _resize(client, c, 2)
    assert resized["targetNodeCount"] == 2
    view = wait_counts(client, c, idleNodeCount=2)
    assert view["currentNodeCount"] == 2 and view["allocationState"] == "steady"
    assert view["properties"]["scaleSettings"]["manual"]["targetNodeCount"] == 2


def _two_node_job(client, c: str, name: str, gate, runs) -> None:
    submit(
        client,
        name,
        c,
        {"nodeCount": 2, "customToolkitSettings": {"commandLine": f"{append(runs, 'run')}; {wait_gate(gate)}"}},
    )
    wait_state(client, name, "running")
    wait_for(lambda: lines(runs), "the job's command to start")


def test_shrink_with_requeue(shared_client, unique, tmp_path):
    client = shared_client
    c = unique("requeue")
    make_cluster(client, c, nodes=2)
    gate, runs = tmp_path / "gate", tmp_path / "runs"
    name = unique("big")
    _two_node_job(client, c, name, gate, runs)
    _resize(client, c, 1, "requeue")
    view = wait_state(client, name, "queued")
    assert view["attempt"] == 2
    assert "JobRequeued" in error_codes(view)
    wait_counts(client, c, idleNodeCount=1, runningNodeCount=0)
    assert cluster(client, c)["currentNodeCount"] == 1
    assert "needs 2 nodes" in job(client, name).get("waitingReason", "")
    stays(lambda: job(client, name)["executionState"] == "queued", "a 2-node job cannot run on 1 node")

    open_gate(gate)
    _resize(client, c, 2)
    done = wait_job(client, name)
    assert done["executionState"] == "succeeded" and done["attempt"] == 2
    assert lines(runs) == ["run", "run"]


def test_shrink_with_terminate(shared_client, unique, tmp_path):
    client = shared_client
    c = unique("shrinkterm")
    make_cluster(client, c, nodes=2)
    gate, runs = tmp_path / "gate", tmp_path / "runs"
    name = unique("big")
    _two_node_job(client, c, name, gate, runs)
    _resize(client, c, 1, "terminate")
    done = wait_job(client, name)
    assert done["executionState"] == "failed"
    assert error_codes(done) == ["JobTerminatedByResize"]
    view = wait_counts(client, c, idleNodeCount=1, runningNodeCount=0)
    assert view["currentNodeCount"] == 1 and view["allocationState"] == "steady"
    open_gate(gate)
    stays(lambda: lines(runs) == ["run"], "a job terminated by a resize must not run again")


def test_shrink_waiting_for_job_completion(shared_client, unique, tmp_path):
    client = shared_client
    c = unique("shrinkwait")
    make_cluster(client, c, nodes=2)
    gate, runs = tmp_path / "gate", tmp_path / "runs"
    name = unique("big")
    _two_node_job(client, c, name, gate, runs)
    _resize(client, c, 1, "waitforjobcompletion")
    view = wait_counts(client, c, leavingNodeCount=1, runningNodeCount=1)
    assert view["allocationState"] == "resizing"
    leaving = [n for n in nodes(client, c) if n["state"] == "leaving"]
    assert len(leaving) == 1
    stays(
        lambda: job(client, name)["executionState"] == "running" and counts(client, c)["leavingNodeCount"] == 1,
        "the job keeps running on the leaving node",
    )

    open_gate(gate)
    assert wait_job(client, name)["executionState"] == "succeeded"
    view = wait_counts(client, c, idleNodeCount=1, leavingNodeCount=0, runningNodeCount=0)
    assert view["currentNodeCount"] == 1 and view["allocationState"] == "steady"
    assert leaving[0]["nodeId"] not in {n["nodeId"] for n in nodes(client, c)}
    assert lines(runs) == ["run"]


# -- auto-scale -------------------------------------------------------------------------------------------


def test_auto_scale_grows_to_demand_and_shrinks_when_idle(shared_client, unique, tmp_path):
    client = shared_client
    c = unique("auto")
    client.create_cluster(
        "default", {"backend": "local", "minNodes": 0, "maxNodes": 2, "idleSecondsBeforeScaledown": 2}, c
    )
    view = cluster(client, c)
    assert view["currentNodeCount"] == 0 and view["allocationState"] == "steady"

    with pytest.raises(BatchAIError) as refused:
        submit(client, unique("huge"), c, {"nodeCount": 3, "customToolkitSettings": {"commandLine": "true"}})
    assert 400 <= refused.value.status < 500
    assert refused.value.code == "TooManyNodes"
    assert "maximum 2" in refused.value.message and "nodeCount: 3" in refused.value.message

    seen = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            try:
                seen.append(len(nodes(client, c)))
            except BatchAIError:
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        gate, runs = tmp_path / "gate", tmp_path / "runs"
        first, second = unique("wide"), unique("wide")
        submit(
            client,
            first,
            c,
            {"nodeCount": 2, "customToolkitSettings": {"commandLine": f"{append(runs, 'first')}; {wait_gate(gate)}"}},
        )
        submit(client, second, c, {"nodeCount": 2, "customToolkitSettings": {"commandLine": append(runs, "second")}})
        wait_state(client, first, "running", timeout=30)
        view = cluster(client, c)
        assert view["currentNodeCount"] == 2 and view["nodeStateCounts"]["runningNodeCount"] == 2
        assert view["targetNodeCount"] == 2
        stays(
            lambda: job(client, second)["executionState"] == "queued" and len(nodes(client, c)) == 2,
            "demand of 4 nodes must not grow the cluster above its maximum of 2",
        )

        open_gate(gate)
        for name in (first, second):
            assert wait_job(client, name)["executionState"] == "succeeded"
        assert lines(runs) == ["first", "second"]
        view = wait_for(
            lambda: (lambda v: v if v["currentNodeCount"] == 0 else None)(cluster(client, c)),
            "the idle nodes to be removed",
            timeout=20,
        )
        assert view["targetNodeCount"] == 0 and view["allocationState"] == "steady"
    finally:
        stop.set()
        watcher.join()
    assert seen and max(seen) == 2, seen

    # Switching the scale settings: a minimum of 1 is provisioned at once.
    client.scale_cluster("default", c, {"autoScale": {"minimumNodeCount": 1, "maximumNodeCount": 2}})
    view = wait_counts(client, c, idleNodeCount=1)
    assert view["currentNodeCount"] == 1
    assert view["properties"]["scaleSettings"]["autoScale"]["minimumNodeCount"] == 1
    # ... and a PATCH that does not mention the idle timeout keeps it.
    assert view["properties"]["idleSecondsBeforeScaledown"] == 2


def test_auto_scale_replaces_an_unusable_node_within_its_maximum(shared_client, unique, tmp_path):
    client = shared_client
    c = unique("autobad")
    tried = tmp_path / "tried"
    # The setup task fails on the first node only (as a flaky driver install would).
    setup = f"if [ -f {tried} ]; then echo ok; else touch {tried}; echo first-try-fails >&2; exit 1; fi"
    client.create_cluster(
        "default",
        {"backend": "local", "minNodes": 0, "maxNodes": 2, "idleSecondsBeforeScaledown": 2, "setupTask": setup},
        c,
    )
    name = unique("needs-one")
    submit(client, name, c, {"customToolkitSettings": {"commandLine": "echo ran"}})
    done = wait_job(client, name, timeout=30)
    assert done["executionState"] == "succeeded"
    view = cluster(client, c)
    assert view["currentNodeCount"] == 2, view
    assert view["nodeStateCounts"]["unusableNodeCount"] == 1
    [bad] = [n for n in nodes(client, c) if n["state"] == "unusable"]
    assert [n["nodeId"] for n in client.list(job_path(client, name) + "/nodes")] != [bad["nodeId"]]

    # Once nothing needs them, the unusable node goes too (after the idle timeout); its error
    # stays visible on the cluster.
    view = wait_for(
        lambda: (lambda v: v if v["currentNodeCount"] == 0 else None)(cluster(client, c)),
        "the unusable and idle nodes to be removed",
        timeout=20,
    )
    assert view["targetNodeCount"] == 0 and view["allocationState"] == "steady"
    assert [e["code"] for e in view["errors"]] == ["NodeSetupFailed"]
    assert bad["nodeId"] in view["errors"][0]["message"]
