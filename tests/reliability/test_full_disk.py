"""A full or read-only disk under the service's home: every request says so, naming the path and what to do,
never "failed unexpectedly"; freeing space makes the service work again."""

from __future__ import annotations

import pytest

from batchai_jupyter.client.uploads import UploadFile, upload_files
from batchai_jupyter.errors import BatchAIError
from helpers.api import make_cluster

JOB = {"cluster": "small", "toolkit": "custom", "commandLine": "echo hi"}


def refused(action) -> BatchAIError:
    with pytest.raises(BatchAIError) as caught:
        action()
    return caught.value


def test_a_full_home_is_named_in_every_refusal_and_freeing_space_mends_it(small_home_service, small_disk):
    client = small_home_service.start()
    make_cluster(client, "small", nodes=1)
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

    small_disk.empty()
    client.create_job("default", "default", JOB, "after")
    assert client.wait_for_job("default", "default", "after", timeout=120)["executionState"] == "succeeded"
