"""A full or read-only disk under the service's home: every request says so, naming the path and what to do,
never "failed unexpectedly"; freeing space makes the service work again."""

from __future__ import annotations

import os

import pytest

from batchai_jupyter.client.uploads import UploadFile, upload_files
from batchai_jupyter.errors import BatchAIError, storage_failure
from batchai_jupyter.ports.layout import HomeLayout
from helpers.api import make_cluster
from helpers.waits import wait_for

JOB = {"cluster": "small", "toolkit": "custom", "commandLine": "echo hi"}


def job_folder(home: str, job: dict) -> str:
    """Where the service keeps a job's files: its segment in the default datastore."""
    return os.path.join(HomeLayout(home).local_datastore("default", "default"), job["jobOutputDirectoryPathSegment"])


def cluster_errors(client, code: str) -> list[dict]:
    return [e for e in client.cluster("default", "small")["errors"] if e["code"] == code]


def refused(action) -> BatchAIError:
    with pytest.raises(BatchAIError) as caught:
        action()
    return caught.value


def test_a_full_home_is_named_in_every_refusal_and_deleting_a_job_frees_its_space(small_home_service, small_disk):
    client = small_home_service.start()
    make_cluster(client, "small", nodes=1)
    client.create_job("default", "default", {**JOB, "commandLine": "head -c 3000000 /dev/zero"}, "big")
    assert client.wait_for_job("default", "default", "big", timeout=120)["executionState"] == "succeeded"
    folder = job_folder(small_home_service.home, client.job("default", "default", "big"))
    assert os.path.getsize(os.path.join(folder, "stdouterr", "stdout.txt")) == 3000000
    small_disk.fill()

    for action in (
        lambda: client.create_cluster("default", {"backend": "local", "nodeCount": 0}, "more"),
        lambda: client.create_job("default", "default", JOB, "blocked"),
        lambda: upload_files(client, "default", "default", [UploadFile("big.bin", data=b"x" * 200_000)], "in"),
    ):
        error = refused(action)
        assert (error.code, error.status) == ("NoSpace", 507), error.message
        assert f"no space left on {small_disk.path}/home" in error.message, error.message
        assert "batchai job delete" in error.message

    client.delete_job("default", "default", "big")
    assert not os.path.exists(folder)
    client.create_job("default", "default", JOB, "after")
    assert client.wait_for_job("default", "default", "after", timeout=120)["executionState"] == "succeeded"


def test_a_job_deleted_with_keep_files_leaves_its_files(service_process, client):
    make_cluster(client, "keeps", nodes=1)
    client.create_job("default", "default", {**JOB, "cluster": "keeps"}, "kept")
    job = client.wait_for_job("default", "default", "kept", timeout=120)
    assert job["executionState"] == "succeeded"
    client.delete_job("default", "default", "kept", keep_files=True)
    folder = job_folder(service_process.home, job)
    with open(os.path.join(folder, "stdouterr", "stdout.txt")) as stdout:
        assert stdout.read() == "hi\n"


def test_a_service_on_a_read_only_home_says_so(small_disk, serve_refused, tmp_path):
    home = os.path.join(small_disk.path, "home")
    os.mkdir(home)
    small_disk.remount("ro")
    output = serve_refused(home, str(tmp_path / "runtime"))  # Jupyter's own files elsewhere, as usual
    assert f"ReadOnlyHome: {home} is on a read-only file system" in output, output[-3000:]
    assert "StoreDamaged" not in output and "Traceback" not in output
    # What a request meets there (a live home cannot be remounted read-only while the store is open)
    with pytest.raises(OSError) as caught:
        open(os.path.join(home, "upload.bin"), "wb")
    mapped = storage_failure(caught.value)
    assert mapped is not None and (mapped.code, mapped.status) == ("ReadOnlyHome", 503)
    assert mapped.message.startswith(f"{home}/upload.bin is on a read-only file system")


def test_a_job_that_fills_the_disk_ends_with_its_exit_code_and_the_word_once_space_is_freed(
    small_home_service, small_disk
):
    client = small_home_service.start()
    make_cluster(client, "small", nodes=1)
    client.create_job("default", "default", {**JOB, "commandLine": "head -c 3000000 /dev/zero"}, "big")
    assert client.wait_for_job("default", "default", "big", timeout=120)["executionState"] == "succeeded"
    client.create_job("default", "default", {**JOB, "commandLine": "head -c 20000000 /dev/zero"}, "filler")
    wait_for(lambda: small_disk.is_full(), "the job to fill the disk")

    # The store is on that disk too: the job's end cannot be recorded yet, and the cluster says why (unless
    # SQLite found room for it in pages it already had: then the job has simply ended).
    def stalled_or_ended():
        ended = client.job("default", "default", "filler")["executionState"] in ("succeeded", "failed")
        return cluster_errors(client, "NoSpace") or ended

    stalled = wait_for(stalled_or_ended, "the cluster to say its disk is full, or the job to end")
    if stalled is not True:
        assert f"no space left on {small_disk.path}/home/batchai.db" in stalled[0]["message"], stalled

    client.delete_job("default", "default", "big")  # the service records the filler's end in the room freed
    job = client.wait_for_job("default", "default", "filler", timeout=120)
    assert (job["executionState"], job["executionInfo"]["exitCode"]) == ("failed", 1), job
    (failure,) = job["executionInfo"]["errors"]
    assert failure["code"] == "JobFailed" and f"no space left on {small_disk.path}/home" in failure["message"], job
    assert not cluster_errors(client, "NoSpace")
