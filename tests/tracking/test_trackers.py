"""The run trackers in-process, against their real tools: TensorBoard's event files read back with its own
EventAccumulator, MLflow's SQLite store and an MLflow server address that never answers. What a restarted
service replays is not recorded twice, a sweep's trials are children of its parent run, and an MLflow that
does not answer neither holds up the caller nor fails anything (one warning per outage)."""

from __future__ import annotations

import logging
import socket

import pytest

from batchai_jupyter.ports.tracking import MetricPoint, TrackedRun
from batchai_jupyter.tracking.mlflow_runs import MlflowRuns
from batchai_jupyter.tracking.tensorboard_events import TensorBoardEvents
from helpers.waits import wait_for


def tracked_run(tmp_path, state="running", attempt=1, parent=None, name="trial-1") -> TrackedRun:
    return TrackedRun(
        workspace="default",
        experiment="sweepy",
        job=name,
        uuid=f"uuid-{name}",
        cluster="c1",
        toolkit="pytorch",
        state=state,
        attempt=attempt,
        created=1_700_000_000.0,
        started=1_700_000_001.0,
        ended=1_700_000_009.0 if state in ("succeeded", "failed") else None,
        exit_code=0 if state == "succeeded" else None,
        params={"LR": "0.1"},
        stdouterr_dir=str(tmp_path / name / "stdouterr"),
        output_dirs={},
        parent=parent,
    )


def points(count: int, rank: int | None = 0) -> list[MetricPoint]:
    return [MetricPoint(i, "loss", 1.0 / (i + 1), i, rank, 1_700_000_002.0 + i) for i in range(count)]


def loss_steps(directory: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(directory)
    accumulator.Reload()
    return [event.step for event in accumulator.Tensors("loss")]


def test_tensorboard_events_written_once_across_a_service_restart_and_per_rank(tmp_path):
    run = tracked_run(tmp_path)
    first = TensorBoardEvents()
    first.run_updated(run, points(3))
    first.close()  # the service stops; the job runs on
    again = TensorBoardEvents()  # the next service replays the attempt's file from the start
    again.run_updated(run, points(5))
    again.run_updated(run, [MetricPoint(5, "loss", 0.1, 0, 1, 1_700_000_009.0)])  # rank 1
    again.run_ended(run)
    events = f"{run.stdouterr_dir}/tensorboard"
    assert loss_steps(events) == [0, 1, 2, 3, 4]
    assert loss_steps(f"{events}/rank-1") == [0]


@pytest.fixture
def mlflow_uri(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).create_experiment("sweepy", (tmp_path / "artifacts").as_uri())
    return uri


def test_mlflow_runs_replayed_once_and_trials_are_children_of_their_sweep(tmp_path, mlflow_uri):
    from mlflow import MlflowClient

    first = MlflowRuns(mlflow_uri)
    trial = tracked_run(tmp_path, parent="sweep-7")
    first.run_updated(trial, points(3))
    first.close()
    again = MlflowRuns(mlflow_uri)  # a restarted service finds the run by the job's uuid
    again.run_updated(trial, points(5))
    again.run_ended(tracked_run(tmp_path, state="succeeded", parent="sweep-7"))
    other = tracked_run(tmp_path, state="succeeded", parent="sweep-7", name="trial-2")
    again.run_updated(other, points(1))
    again.run_ended(other)
    again.close()

    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("sweepy").experiment_id
    runs = {run.info.run_name: run for run in client.search_runs([experiment])}
    assert sorted(runs) == ["sweep-7", "trial-1", "trial-2"]
    parent = runs["sweep-7"].info.run_id
    assert [runs[name].data.tags["mlflow.parentRunId"] for name in ("trial-1", "trial-2")] == [parent, parent]
    assert [m.step for m in client.get_metric_history(runs["trial-1"].info.run_id, "loss")] == [0, 1, 2, 3, 4]
    assert runs["trial-1"].info.status == "FINISHED" and runs["trial-1"].data.params == {"LR": "0.1"}


def test_an_mlflow_that_does_not_answer_holds_up_nothing_and_warns_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    tracker = MlflowRuns(f"http://127.0.0.1:{silent.getsockname()[1]}", queue_size=2)
    caplog.set_level(logging.WARNING, logger="batchai")
    for count in range(1, 7):  # each returns although MLflow has not answered the first
        tracker.run_updated(tracked_run(tmp_path), points(count))
    assert sum("falling behind" in r.getMessage() for r in caplog.records) == 1
    silent.close()  # now it fails: the waiting request, then every one after it at once

    def warned():
        return [r for r in caplog.records if "failed" in r.getMessage()] or None

    wait_for(warned, "the warning that MLflow failed")
    tracker.run_ended(tracked_run(tmp_path, state="succeeded"))
    tracker.close()
    failures = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1 and "jobs go on" in failures[0], failures
