"""A cluster stuck in slow work (here a job's mount command that waits for a gate file) holds up
only itself: on another cluster jobs start, end and are terminated, and clusters are created and
deleted, while the stuck one is still in its mount command. Through a real `batchai serve`."""

from __future__ import annotations

import shlex
import threading

from batchai_jupyter.core.workers import ClusterWorkers
from helpers.waits import wait_for

WAIT_SECONDS = 120.0


def _cluster(client, name: str, nodes: int = 1) -> None:
    client.create_cluster("default", {"backend": "local", "nodeCount": nodes}, name)
    wait_for(
        lambda: client.get(client.cluster_path("default", name))["nodeStateCounts"]["idleNodeCount"] == nodes,
        f"cluster {name} to have {nodes} idle node(s)",
    )


def _state(client, job: str) -> str:
    return client.job("default", "default", job)["executionState"]


def test_a_cluster_stuck_in_a_mount_command_holds_up_no_other_cluster(shared_client, unique, tmp_path):
    client = shared_client
    gate = tmp_path / "gate"
    stuck, free = unique("stuck"), unique("free")
    _cluster(client, stuck)
    _cluster(client, free)
    mount = f"while [ ! -f {shlex.quote(str(gate))} ]; do sleep 0.05; done; mkdir -p"
    blocker = unique("blocker")
    client.create_job(
        "default",
        "default",
        {
            "cluster": stuck,
            "customToolkitSettings": {"commandLine": "echo mounted"},
            "mountVolumes": {"unmanagedFileSystems": [{"mountCommand": mount, "relativeMountPath": "gated"}]},
        },
        blocker,
    )
    wait_for(lambda: _state(client, blocker) == "running", f"job {blocker} to take its node and start mounting")

    long_job, quick_job = unique("long"), unique("quick")
    client.create_job(
        "default", "default", {"cluster": free, "customToolkitSettings": {"commandLine": "sleep 600"}}, long_job
    )
    wait_for(
        lambda: client.list(client.job_path("default", "default", long_job) + "/tasks"),
        f"job {long_job} to have started its task",
    )
    client.request("POST", client.job_path("default", "default", long_job) + "/terminate")
    wait_for(lambda: _state(client, long_job) == "failed", f"terminated job {long_job} to end")
    client.create_job(
        "default", "default", {"cluster": free, "customToolkitSettings": {"commandLine": "echo hi"}}, quick_job
    )
    assert client.wait_for_job("default", "default", quick_job, timeout=WAIT_SECONDS)["executionState"] == "succeeded"
    other = unique("other")
    _cluster(client, other)
    client.request("DELETE", client.cluster_path("default", other))

    # All of that happened while the stuck cluster was still in its mount command.
    assert not gate.exists()
    assert _state(client, blocker) == "running"
    assert client.list(client.job_path("default", "default", blocker) + "/tasks") == []

    gate.write_text("")
    assert client.wait_for_job("default", "default", blocker, timeout=WAIT_SECONDS)["executionState"] == "succeeded"


def test_a_busy_worker_delays_no_other_cluster_and_cycles_coalesce():
    workers = ClusterWorkers()
    release = threading.Event()
    started = threading.Event()
    cycles: list[str] = []
    try:

        def stuck_cycle() -> None:
            cycles.append("stuck")
            started.set()
            release.wait(WAIT_SECONDS)

        workers.request_cycle("ws/stuck", stuck_cycle)
        assert started.wait(WAIT_SECONDS)
        # Asked again and again while its cycle runs: one more cycle afterwards, not a backlog.
        for _ in range(5):
            workers.request_cycle("ws/stuck", stuck_cycle)
        assert workers.run("ws/other", "a user's action", lambda: "done") == "done"
        assert cycles == ["stuck"]
        release.set()
        wait_for(lambda: cycles == ["stuck", "stuck"], "the one coalesced cycle to run")
        assert workers.run("ws/stuck", "a user's action", lambda: len(cycles)) == 2
    finally:
        release.set()
        workers.stop(timeout=10)


def test_an_action_that_fails_reports_to_its_caller_and_the_worker_lives_on():
    workers = ClusterWorkers()
    try:

        def broken() -> None:
            raise ValueError("no such node")

        try:
            workers.run("ws/c", "a user's action", broken)
        except ValueError as failure:
            assert str(failure) == "no such node"
        else:
            raise AssertionError("the action's exception did not reach its caller")
        assert workers.run("ws/c", "a user's action", lambda: 42) == 42
    finally:
        workers.stop(timeout=10)
