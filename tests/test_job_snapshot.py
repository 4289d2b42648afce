"""GET .../jobs/{job}/snapshot against a real `batchai serve`: the job, its tasks, log tails with the
offsets a client continues from, metrics and output files in one response; clean refusals."""

from __future__ import annotations

import shlex
import sys

import pytest
import requests

from batchai_jupyter.client import Client
from batchai_jupyter.errors import BatchAIError
from helpers.waits import wait_for

# Prints 40 numbered lines ending in a two-byte character, records three metrics, writes an output file.
SCRIPT = """
import os
from batchai_jupyter.runtime import log_metric
for i in range(40):
    print(f"line {i:02d} é", flush=True)
for step in range(3):
    log_metric("loss", 1.0 / (step + 1), step)
with open(os.path.join(os.environ["AZ_BATCHAI_OUTPUT_MODEL"], "weights.bin"), "wb") as handle:
    handle.write(b"w" * 300)
"""
LOG = "".join(f"line {i:02d} é\n" for i in range(40)).encode()


@pytest.fixture(scope="module")
def finished_job(shared_service) -> tuple[Client, str]:
    client = Client(shared_service.url, shared_service.env()["BATCHAI_TOKEN"])
    client.create_cluster("default", {"backend": "local", "nodeCount": 1}, "snap")
    wait_for(lambda: client.cluster("default", "snap")["nodeStateCounts"]["idleNodeCount"] == 1, "the cluster's node")
    spec = {
        "cluster": "snap",
        "customToolkitSettings": {"commandLine": f"{shlex.quote(sys.executable)} -c {shlex.quote(SCRIPT)}"},
        "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT"}],
    }
    client.create_job("default", "default", spec, "snapped")
    assert client.wait_for_job("default", "default", "snapped", timeout=120)["executionState"] == "succeeded"
    return client, "snapped"


def test_a_snapshot_holds_the_job_its_tasks_logs_metrics_and_files(finished_job):
    client, name = finished_job
    snapshot = client.job_snapshot("default", "default", name)
    assert snapshot["job"] == client.job("default", "default", name)
    assert snapshot["tasks"] == client.job_tasks("default", "default", name)
    stdout = next(part for part in snapshot["logs"] if part["stream"] == "stdout")
    assert stdout["task"] == snapshot["tasks"][0]["name"] and stdout["path"] == snapshot["tasks"][0]["stdout"]
    assert (stdout["offset"], stdout["nextOffset"], stdout["size"]) == (0, len(LOG), len(LOG))
    assert stdout["text"] == LOG.decode()
    metrics = snapshot["metrics"]
    assert metrics["path"] == "metrics.jsonl" and metrics["nextOffset"] == metrics["size"]
    assert [line.split('"step": ')[1][0] for line in metrics["text"].splitlines()] == ["0", "1", "2"]
    (weights,) = [entry for entry in snapshot["outputFiles"]["MODEL"] if entry["name"] == "weights.bin"]
    assert weights["contentLength"] == 300
    link = client.url + weights["downloadUrl"].lstrip("/")
    assert client.session.get(link, timeout=30).content == b"w" * 300


def test_a_tail_starts_at_a_character_and_continues_with_ranged_reads(finished_job):
    client, name = finished_job
    stdout = next(
        part
        for part in client.job_snapshot("default", "default", name, tail_bytes=4)["logs"]
        if part["stream"] == "stdout"
    )
    assert stdout["text"] == " é\n" and stdout["offset"] == len(LOG) - 4
    # The last 2 bytes start inside "é" (2 bytes): the tail begins after it, at the newline.
    stdout = next(
        part
        for part in client.job_snapshot("default", "default", name, tail_bytes=2)["logs"]
        if part["stream"] == "stdout"
    )
    assert stdout["text"] == "\n" and stdout["offset"] == len(LOG) - 1 == stdout["nextOffset"] - 1
    # A client continues from any offset it holds: by a ranged read, or by naming the file in `since`.
    middle = LOG.index(b"line 20")
    assert client.read_job_file("default", "default", name, stdout["path"], offset=middle) == LOG[middle:]
    onwards = client.job_snapshot("default", "default", name, tail_bytes=0, since={stdout["path"]: middle})
    part = next(p for p in onwards["logs"] if p["path"] == stdout["path"])
    assert (part["offset"], part["text"]) == (middle, LOG[middle:].decode())
    empty = client.job_snapshot("default", "default", name, tail_bytes=0)
    assert all(p["text"] == "" and p["offset"] == p["size"] for p in empty["logs"])


def _refusal(response: requests.Response, status: int, code: str, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == code, body
    assert fragment in body["message"] and "Traceback" not in body["message"], body


def test_an_unknown_job_or_bad_arguments_are_refused_clearly(finished_job):
    client, name = finished_job
    base = f"{client.url}batchai/api/v1/workspaces/default/experiments/default/jobs"
    _refusal(client.session.get(f"{base}/no-such-job/snapshot", timeout=30), 404, "JobNotFound", "no-such-job")
    _refusal(
        client.session.get(f"{base}/{name}/snapshot", params={"since": "stdout.txt"}, timeout=30),
        400,
        "InvalidArgument",
        "since",
    )
    _refusal(
        client.session.get(f"{base}/{name}/snapshot", params={"tailbytes": "-1"}, timeout=30),
        400,
        "InvalidArgument",
        "tailbytes",
    )
    _refusal(
        client.session.get(f"{base}/{name}/snapshot", params={"tailbytes": "lots"}, timeout=30),
        400,
        "InvalidArgument",
        "tailbytes",
    )
    with pytest.raises(BatchAIError) as refused:
        client.job_snapshot("default", "default", "no-such-job")
    assert refused.value.status == 404
