"""Old Batch AI habits against a real `batchai serve`: a job body read back with GET and sent again."""

from __future__ import annotations

import uuid

import pytest

from batchai_jupyter.client import Client
from helpers.api import make_cluster, stdout_text, wait_job
from helpers.service import TOKEN


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
