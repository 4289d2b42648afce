"""A failed job's REST view carries the service's failure summary (which task failed first, its stderr and the
exception line), against a real `batchai serve`; listings and jobs that did not fail carry none."""

from __future__ import annotations

import shlex
import sys

import pytest

from batchai_jupyter.client import Client
from helpers.waits import wait_for

RANK_ONE_RAISES = """\
import os, pathlib, time
rank = int(os.environ["RANK"])
print("working on rank", rank, flush=True)
done = pathlib.Path({done!r})
def check(rank):
    raise ValueError(f"bad shape on rank {{rank}}")
if rank == 0:
    done.touch()
    time.sleep(60)
else:
    while not done.exists():
        time.sleep(0.05)
    check(rank)
"""


@pytest.fixture(scope="module")
def failed_job(shared_service, tmp_path_factory) -> tuple[Client, str]:
    client = Client(shared_service.url, shared_service.env()["BATCHAI_TOKEN"])
    client.create_cluster("default", {"backend": "local", "nodeCount": 2}, "pair")
    wait_for(lambda: client.cluster("default", "pair")["nodeStateCounts"]["idleNodeCount"] == 2, "the cluster's nodes")
    folder = tmp_path_factory.mktemp("rank-one")
    script = folder / "rank_one_raises.py"
    script.write_text(RANK_ONE_RAISES.format(done=str(folder / "rank0-started")))
    spec = {"cluster": "pair", "nodeCount": 2, "pyTorchSettings": {"pythonScriptFilePath": str(script)}}
    client.create_job("default", "default", spec, "rank1-fails")
    assert client.wait_for_job("default", "default", "rank1-fails", timeout=120)["executionState"] == "failed"
    return client, "rank1-fails"


def test_a_failed_jobs_view_names_the_failing_rank_its_stderr_and_its_exception(failed_job):
    client, name = failed_job
    job = client.job("default", "default", name)
    failure = job["failure"]
    tasks = client.job_tasks("default", "default", name)
    (rank_one,) = [t for t in tasks if t["index"] == 1 and t["attempt"] == job["attempt"]]
    assert failure["task"] == rank_one["name"] and failure["node"] == rank_one["node"]
    assert failure["exitCode"] == rank_one["exitCode"] == 1
    # The log is named as the files API names it: it reads back the traceback the line was taken from.
    assert failure["log"] == rank_one["stderr"]
    stderr = client.read_job_file("default", "default", name, failure["log"]).decode()
    assert "Traceback (most recent call last)" in stderr and "in check" in stderr, stderr
    assert failure["line"] == "ValueError: bad shape on rank 1"
    assert failure["headline"] == f"{failure['label']} failed (exit code 1): ValueError: bad shape on rank 1"
    assert failure["label"].endswith(" 1")
    # The snapshot the JobMonitor reads carries the same view.
    assert client.job_snapshot("default", "default", name)["job"]["failure"] == failure


def test_listings_stay_cheap_and_a_job_that_did_not_fail_has_no_failure(failed_job):
    client, name = failed_job
    listed = {job["name"]: job for job in client.jobs("default", "default")}
    assert listed[name]["executionState"] == "failed" and "failure" not in listed[name]
    client.create_job(
        "default", "default", {"cluster": "pair", "customToolkitSettings": {"commandLine": "true"}}, "fine"
    )
    assert client.wait_for_job("default", "default", "fine", timeout=120)["executionState"] == "succeeded"
    assert "failure" not in client.job("default", "default", "fine")


def _fail_with(client: Client, name: str, error: str) -> dict:
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(f'raise {error}')}"
    spec = {"cluster": "pair", "customToolkitSettings": {"commandLine": command}}
    client.create_job("default", "default", spec, name)
    assert client.wait_for_job("default", "default", name, timeout=120)["executionState"] == "failed"
    return client.job("default", "default", name)["failure"]


def test_a_job_submitted_again_under_its_name_gets_its_own_failure(failed_job):
    """A notebook cell run again replaces its job: the summary kept for the first one is not the second's."""
    client, _ = failed_job
    assert _fail_with(client, "again", "KeyError('first')")["line"] == "KeyError: 'first'"
    client.delete_job("default", "default", "again")
    assert _fail_with(client, "again", "OSError('second')")["line"] == "OSError: second"
