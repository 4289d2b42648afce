"""The JobMonitor is woken by the service's event stream, and polls by itself without one."""

from __future__ import annotations

import shlex
import time

import pytest

from batchai_jupyter.client import Client
from batchai_jupyter.notebook.jobhandle import Job
from batchai_jupyter.notebook.widgets import JobMonitor


def _eventually(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def one_node(shared_client: Client, unique) -> str:
    name = unique("ev")
    shared_client.create_cluster("default", {"backend": "local", "nodeCount": 1}, name)
    _eventually(
        lambda: shared_client.cluster("default", name)["nodeStateCounts"]["idleNodeCount"] == 1,
        f"cluster {name}'s node",
    )
    return name


def _submit(client: Client, cluster: str, name: str, command: str) -> Job:
    client.create_job(
        "default", "default", {"cluster": cluster, "customToolkitSettings": {"commandLine": command}}, name
    )
    return Job(client, "default", "default", name)


def test_a_queued_job_starting_wakes_the_monitor(shared_client, one_node, unique, tmp_path):
    gate = shlex.quote(str(tmp_path / "gate"))
    _submit(shared_client, one_node, unique("hold"), f"while [ ! -f {gate} ]; do sleep 0.05; done")
    job = _submit(shared_client, one_node, unique("woken"), "echo hello from the queue")
    # Without an event it would next look in 10 minutes: only the stream can show the job starting.
    monitor = JobMonitor(job, idle_wait=600.0)
    try:
        _eventually(lambda: monitor.state == "queued" and monitor.events.connected, "the monitor to listen")
        time.sleep(0.5)  # let it settle into its long wait
        (tmp_path / "gate").touch()
        _eventually(
            lambda: monitor.state == "succeeded" and "hello from the queue" in monitor.log_text(),
            "the event to wake the monitor",
        )
        _eventually(
            lambda: not monitor.poller.running and not monitor.events.thread.is_alive(),
            "the monitor's threads to end with the job",
        )
    finally:
        monitor.close()


def test_without_the_event_stream_the_monitor_polls(shared_client, one_node, unique):
    job = _submit(shared_client, one_node, unique("polled"), "for i in 1 2 3; do echo tick $i; sleep 0.3; done")
    monitor = JobMonitor(job, events=False, poll_max=0.5)
    try:
        assert monitor.events is None
        _eventually(lambda: monitor.state == "succeeded" and not monitor.poller.running, "the job to end")
        assert monitor.log_text() == "tick 1\ntick 2\ntick 3\n"
    finally:
        monitor.close()
