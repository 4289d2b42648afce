"""Old Batch AI habits against a real `batchai serve`: a job body read back with GET and sent again, job
preparations of one machine's nodes taking turns, and streaming a file a multi-task job never wrote."""

from __future__ import annotations

import uuid

import pytest

from batchai_jupyter.client import Client
from helpers.api import make_cluster, read_log, stdout_text, wait_job
from helpers.cli import cli, ok
from helpers.service import TOKEN
from helpers.waits import wait_for


@pytest.fixture(scope="module")
def cluster(shared_service) -> str:
    name = "fid-" + uuid.uuid4().hex[:6]
    make_cluster(Client(shared_service.url, TOKEN), name, nodes=2)
    return name


def test_a_get_body_sent_again_runs_the_same_job(shared_client, cluster, unique):
    first, second = unique("first"), unique("again")
    shared_client.create_job(
        "default",
        "default",
        {
            "properties": {
                "cluster": cluster,
                "nodeCount": 1,
                "priority": "high",
                "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
                "environmentVariables": [{"name": "WORD", "value": "resubmitted"}],
                "customToolkitSettings": {"commandLine": "echo $WORD"},
            }
        },
        first,
    )
    assert wait_job(shared_client, first)["executionState"] == "succeeded"
    body = shared_client.job("default", "default", first)
    assert body["executionState"] == "succeeded" and body["schedulingPriority"] == "high"
    shared_client.create_job("default", "default", body, second)
    assert wait_job(shared_client, second)["executionState"] == "succeeded"
    assert "resubmitted" in stdout_text(shared_client, second)
    assert shared_client.job("default", "default", second)["schedulingPriority"] == "high"


def test_job_preparations_on_one_machines_nodes_take_turns(shared_client, cluster, unique, tmp_path):
    """The first node's preparation holds until the test opens the gate: the other node's must wait for it
    (and say so in its log) instead of running beside it, as two apt-gets on one machine would."""
    inside, gate = tmp_path / "inside", tmp_path / "gate"
    inside.mkdir()
    job = unique("prep")
    shared_client.create_job(
        "default",
        "default",
        {
            "properties": {
                "cluster": cluster,
                "nodeCount": 2,
                "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
                "jobPreparation": {
                    "commandLine": f"touch {inside}/$AZ_BATCHAI_NODE_IP; "
                    f"while [ ! -e {gate} ]; do sleep 0.1; done; ls {inside} | wc -l"
                },
                "customToolkitSettings": {"commandLine": "true"},
            }
        },
        job,
    )

    def one_waits():
        names = [e["name"] for e in shared_client.job_files("default", "default", job) if "job_prep" in e["name"]]
        logs = [read_log(shared_client, job, n) for n in names if n.startswith("stderr")]
        return any("waiting for another node's job preparation" in text for text in logs)

    # one inside, the other waiting for it (not started: another job's preparation may hold the lock first)
    wait_for(lambda: one_waits() and len(list(inside.iterdir())) == 1, "one node's preparation to wait for the other's")
    gate.touch()
    assert wait_job(shared_client, job)["executionState"] == "succeeded"
    counts = sorted(
        read_log(shared_client, job, e["name"]).strip()
        for e in shared_client.job_files("default", "default", job)
        if e["name"].startswith("stdout-job_prep")
    )
    assert counts == ["1", "2"]  # each saw only what came before it


def test_streaming_a_file_a_multi_task_job_never_wrote_names_the_files_it_did(shared_service, shared_client, cluster,
                                                                                unique, tmp_path):  # fmt: skip
    script = tmp_path / "hello.py"
    script.write_text("print('hello')\n")
    job = unique("ranks")
    shared_client.create_job(
        "default",
        "default",
        {
            "cluster": cluster,
            "nodeCount": 1,
            "pyTorchSettings": {"pythonScriptFilePath": str(script), "processCount": 2},
        },
        job,
    )
    assert wait_job(shared_client, job)["executionState"] == "succeeded"
    streamed = cli(shared_service, "job", "file", "stream", "-n", job)
    assert streamed.returncode == 1 and streamed.stdout == "", streamed
    assert "without writing 'stdout.txt'" in streamed.stderr and "stdout-0.txt, stdout-1.txt" in streamed.stderr
    assert ok(cli(shared_service, "job", "file", "stream", "-n", job, "-f", "stdout-1.txt")) == "hello\n"
