"""What the core tells run trackers: a job's parameters from its spec, and an experiment's own tracking
settings as a request gives them (refused clearly when wrong, never echoing credentials)."""

from __future__ import annotations

import pytest

from batchai_jupyter.core.records import Job
from batchai_jupyter.core.spec import parse_job_spec
from batchai_jupyter.core.tracking import experiment_tracking, run_params
from batchai_jupyter.errors import BatchAIError
from helpers.records import queued_job


def job_of(document: dict) -> Job:
    spec = parse_job_spec({"cluster": "c1", **document}, name="j1")
    return queued_job(spec)


def test_a_jobs_params_are_its_variables_arguments_and_counts():
    job = job_of(
        {
            "nodeCount": 2,
            "pyTorchSettings": {"pythonScriptFilePath": "train.py", "commandLineArgs": "--lr 0.1", "processCount": 4},
            "environmentVariables": {"WIDTH": "64"},
            "secrets": {"API_KEY": "s3cret"},
        }
    )
    assert run_params(job) == {
        "WIDTH": "64",
        "pythonScriptFilePath": "train.py",
        "commandLineArgs": "--lr 0.1",
        "nodeCount": "2",
        "processCount": "4",
    }


def test_an_experiments_tracking_uri_is_checked():
    assert experiment_tracking({"mlflowTrackingUri": "http://mlflow:5000"}) == {
        "mlflowTrackingUri": "http://mlflow:5000"
    }
    assert experiment_tracking({"mlflowTrackingUri": ""}) == experiment_tracking({}) == {}
    for document, says in [
        ({"mlflowUri": "http://x"}, "mlflowUri: not an experiment setting"),
        ({"mlflowTrackingUri": 5}, "give a URI"),
        ({"mlflowTrackingUri": "mlflow-host"}, "is not a URI"),
        ({"mlflowTrackingUri": "https://bob:hunter2@mlflow"}, "MLFLOW_TRACKING_PASSWORD"),
    ]:
        with pytest.raises(BatchAIError) as refused:
            experiment_tracking(document)
        assert refused.value.status == 400 and says in refused.value.message
        assert "hunter2" not in refused.value.message
