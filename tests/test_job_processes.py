"""When a job ends (a task fails, the user terminates it), nothing it started stays on its nodes:
not the running rank's process group, not what an exited rank left in the background, not what
escaped into a session of its own. Checked on the local backend through a real `batchai serve`,
by scanning /proc for the processes the job's script started under names only it uses."""
from __future__ import annotations

import os
import time
import uuid

import pytest

# Each rank starts two background sleeps named after the test's token: one in its process group,
# one in a new session (setsid: out of the group and the session). Rank 1 then fails (or, with
# `hold`, stays), rank 0 stays in the foreground.
SCRIPT = r'''
import os, subprocess, sys, time
token, gate, mode = sys.argv[1], sys.argv[2], sys.argv[3]
rank = os.environ["RANK"]
subprocess.Popen([f"{token}-r{rank}-group", "600"], executable="/bin/sleep")
subprocess.Popen([f"{token}-r{rank}-session", "600"], executable="/bin/sleep", start_new_session=True)
open(f"{gate}.{rank}", "w").close()
if rank == "1" and mode == "fail":
    while not os.path.exists(f"{gate}.0"):
        time.sleep(0.05)
    sys.exit(3)
time.sleep(600)
'''


def processes_named(token: str) -> list[str]:
    """Live (non-zombie) processes whose argv[0] starts with `token`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                name = handle.read().split(b"\0")[0].decode(errors="replace")
            with open(f"/proc/{entry}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if name.startswith(token) and state != "Z":
            found.append(name)
    return sorted(found)


def wait_until(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def cluster(shared_client):
    name = "procs-" + uuid.uuid4().hex[:6]
    shared_client.create_cluster("default", {"backend": "local", "nodeCount": 2}, name)
    wait_until(lambda: idle_nodes(shared_client, name) == 2, f"cluster {name} to have 2 idle nodes")
    return name


def idle_nodes(client, cluster: str) -> int:
    return client.get(client.cluster_path("default", cluster))["nodeStateCounts"]["idleNodeCount"]


def start_job(client, cluster: str, tmp_path, mode: str) -> tuple[str, str]:
    script = tmp_path / "ranks.py"
    script.write_text(SCRIPT)
    token = "batchai-test-" + uuid.uuid4().hex[:10]
    name = "job-" + token[-10:]
    gate = tmp_path / "started"
    client.create_job("default", "default", {"cluster": cluster, "nodeCount": 2, "pyTorchSettings": {
        "pythonScriptFilePath": str(script), "commandLineArgs": f"{token} {gate} {mode}"}}, name)
    expected = [f"{token}-r{rank}-{kind}" for rank in "01" for kind in ("group", "session")]
    if mode == "hold":  # both ranks run, each with its two background sleeps
        wait_until(lambda: processes_named(token) == expected, "every rank's background processes")
    return name, token


def test_a_failed_rank_ends_the_job_and_every_process_it_started(shared_client, cluster, tmp_path):
    name, token = start_job(shared_client, cluster, tmp_path, "fail")
    done = shared_client.wait_for_job("default", "default", name, timeout=120)
    assert done["executionState"] == "failed"
    assert [e["code"] for e in done["executionInfo"]["errors"]] == ["JobFailed"], done["executionInfo"]
    assert "exited with code 3" in done["executionInfo"]["errors"][0]["message"]
    # rank 1 started its sleeps before it failed: the job got that far, and they are gone too
    assert (tmp_path / "started.1").exists() and (tmp_path / "started.0").exists()
    wait_until(lambda: processes_named(token) == [], "the failed job's processes to be gone", timeout=10)
    assert idle_nodes(shared_client, cluster) == 2


def test_terminating_a_job_kills_every_process_it_started(shared_client, cluster, tmp_path):
    name, token = start_job(shared_client, cluster, tmp_path, "hold")
    shared_client.request("POST", f"workspaces/default/experiments/default/jobs/{name}/terminate")
    done = shared_client.wait_for_job("default", "default", name, timeout=120)
    assert done["executionState"] == "failed"
    assert [e["code"] for e in done["executionInfo"]["errors"]] == ["JobTerminated"]
    wait_until(lambda: processes_named(token) == [], "the terminated job's processes to be gone", timeout=10)
    assert idle_nodes(shared_client, cluster) == 2
