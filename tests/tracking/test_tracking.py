"""A job that logs metrics, writes its own TensorBoard events and an output file, run on a real Jupyter server
configured with an MLflow file store: its log_metric points become TensorBoard event files beside its logs
(read back with TensorBoard's own EventAccumulator), TensorBoard over it loads through the server's
authenticated proxy and its scalars API shows both the logged and the job's own scalars, the job is an MLflow
run with its params, metrics, tags and output artifacts (read back with MLflow's client), and TensorBoard
stops with the server."""

from __future__ import annotations

import glob
import os
import shlex
import sys

import pytest
import requests

from batchai_jupyter.errors import BatchAIError
from helpers.api import wait_job
from helpers.lab import CHROMIUM_FLAGS
from helpers.tools import require_tool
from helpers.waits import wait_for

EXPERIMENT = "tracked-exp"
JOB = "lr-run"
LOSSES = [1.0, 0.5, 0.25, 0.125, 0.0625]
# Logs a loss curve through batchai's log_metric, its own accuracy with TensorBoard's writer, saves a model.
SCRIPT = """
import os, sys
from batchai_jupyter.runtime import log_metric
from tensorboard.summary import Writer
for step, loss in enumerate(LOSSES):
    log_metric("loss", loss, step)
own = Writer(os.environ["AZ_BATCHAI_OUTPUT_TENSORBOARD"])
own.add_scalar("accuracy", 0.75, 3)
own.close()
with open(os.path.join(os.environ["AZ_BATCHAI_OUTPUT_MODEL"], "weights.txt"), "w") as handle:
    handle.write("w=" + sys.argv[1])
""".replace("LOSSES", repr(LOSSES))


@pytest.fixture(scope="module")
def finished_job(tracking_server):
    from mlflow import MlflowClient

    server, client, mlflow_uri = tracking_server
    # Made here only to keep its artifacts in the test's folder (a SQLite store's default is ./mlruns); the
    # service records into the MLflow experiment of the job's experiment's name, made by it when missing.
    MlflowClient(tracking_uri=mlflow_uri).create_experiment(EXPERIMENT, (server.base / "artifacts").as_uri())
    client.create_experiment("default", EXPERIMENT)
    spec = {
        "cluster": "tracked",
        "customToolkitSettings": {
            "commandLine": f"{shlex.quote(sys.executable)} -c {shlex.quote(SCRIPT)} $LEARNING_RATE"
        },
        "environmentVariables": {"LEARNING_RATE": "0.01", "WIDTH": "64"},
        "outputDirectories": [
            {"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT"},
            {"id": "TENSORBOARD", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT"},
        ],
    }
    client.create_job("default", EXPERIMENT, spec, JOB)
    job = wait_job(client, JOB, experiment=EXPERIMENT)
    assert job["executionState"] == "succeeded", job
    return server, client, mlflow_uri


def stdouterr_of(server) -> str:
    [directory] = glob.glob(str(server.base / "home" / "datastores" / "default" / "default" / EXPERIMENT / JOB / "*"))
    return os.path.join(directory, "stdouterr")


def test_logged_metrics_are_tensorboard_event_files_beside_the_logs(finished_job):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    server, _client, _uri = finished_job
    events = os.path.join(stdouterr_of(server), "tensorboard")

    def loaded():
        accumulator = EventAccumulator(events)
        accumulator.Reload()
        points = accumulator.Tensors("loss") if "loss" in accumulator.Tags()["tensors"] else []
        return points if len(points) == len(LOSSES) else None

    points = wait_for(loaded, "the job's loss curve in TensorBoard event files")
    assert [p.step for p in points] == list(range(len(LOSSES)))
    assert [float(tensor_util.make_ndarray(p.tensor_proto)) for p in points] == LOSSES


def test_the_job_is_an_mlflow_run_with_params_metrics_tags_and_artifacts(finished_job):
    from mlflow import MlflowClient

    _server, _client, mlflow_uri = finished_job
    mlflow = MlflowClient(tracking_uri=mlflow_uri)

    def finished_run():
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        runs = mlflow.search_runs([experiment.experiment_id]) if experiment else []
        return runs[0] if runs and runs[0].info.status == "FINISHED" else None

    run = wait_for(finished_run, f"job {JOB} as a finished MLflow run")
    assert run.info.run_name == JOB
    assert run.data.params["LEARNING_RATE"] == "0.01" and run.data.params["WIDTH"] == "64"
    assert "$LEARNING_RATE" in run.data.params["commandLine"]
    tags = run.data.tags
    assert [tags[f"batchai.{name}"] for name in ("cluster", "toolkit", "state")] == ["tracked", "custom", "succeeded"]
    history = mlflow.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == list(enumerate(LOSSES))
    model = [artifact.path for artifact in mlflow.list_artifacts(run.info.run_id, "MODEL")]
    assert model == ["MODEL/weights.txt"]
    path = mlflow.download_artifacts(run.info.run_id, "MODEL/weights.txt", str(_server.base))
    assert open(path).read() == "w=0.01"


def test_an_experiment_records_in_its_own_mlflow(finished_job, tmp_path):
    from mlflow import MlflowClient

    server, client, service_uri = finished_job
    own_uri = f"sqlite:///{tmp_path / 'own.db'}"
    MlflowClient(tracking_uri=own_uri).create_experiment("own-mlflow", (tmp_path / "artifacts").as_uri())
    assert client.create_experiment("default", "own-mlflow", own_uri)["mlflowTrackingUri"] == own_uri
    with pytest.raises(BatchAIError) as refused:
        client.create_experiment("default", "leaky", "https://alice:s3cret@mlflow.example")
    assert refused.value.status == 400 and "MLFLOW_TRACKING_USERNAME" in refused.value.message
    assert "s3cret" not in refused.value.message
    with pytest.raises(BatchAIError) as unknown:
        client.request("PATCH", client.experiment_path("default", "own-mlflow"), json_body={"mlflowUri": "x:y"})
    assert unknown.value.status == 400 and "mlflowTrackingUri" in unknown.value.message
    command = (
        f"{shlex.quote(sys.executable)} -c 'from batchai_jupyter.runtime import log_metric; log_metric(\"acc\", 0.5)'"
    )
    client.create_job(
        "default", "own-mlflow", {"cluster": "tracked", "customToolkitSettings": {"commandLine": command}}, "own-run"
    )
    assert wait_job(client, "own-run", experiment="own-mlflow")["executionState"] == "succeeded"

    own = MlflowClient(tracking_uri=own_uri)
    experiment = own.get_experiment_by_name("own-mlflow").experiment_id

    def finished():
        runs = own.search_runs([experiment])
        return runs if runs and runs[0].info.status == "FINISHED" else None

    [run] = wait_for(finished, "the job's run in the experiment's own MLflow")
    assert run.info.run_name == "own-run" and run.data.metrics == {"acc": 0.5}
    assert MlflowClient(tracking_uri=service_uri).get_experiment_by_name("own-mlflow") is None


def test_the_magic_opens_tensorboard_over_a_job_or_an_experiment(finished_job, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    server, client, _uri = finished_job
    monkeypatch.setenv("BATCHAI_URL", server.url)
    monkeypatch.setenv("BATCHAI_TOKEN", client.token)
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "batchai_jupyter")
        of_job = shell.run_line_magic("batchai_tensorboard", f"{JOB} -e {EXPERIMENT}")
        of_experiment = shell.run_line_magic("batchai_tensorboard", EXPERIMENT)
        missing = shell.run_cell("%batchai_tensorboard no-such-run")
    finally:
        shell.reset(new_session=False)
    assert of_job.url == client.open_tensorboard("default", EXPERIMENT, JOB)["url"]  # the same TensorBoard
    assert of_experiment.url != of_job.url and f"{JOB}/metrics" in of_experiment.runs
    assert f'<iframe src="{of_job.url}"' in of_job._repr_html_() and client.token not in of_job._repr_html_()
    assert "neither a job of experiment 'default' nor an experiment" in str(missing.error_in_exec)
    page = requests.get(of_experiment.url, headers={"Authorization": f"token {client.token}"}, timeout=60)
    assert page.status_code == 200 and "<tb-webapp>" in page.text


def test_tensorboard_shows_the_job_in_a_browser(finished_job, tmp_path):
    from playwright.sync_api import sync_playwright

    _server, client, _uri = finished_job
    url = client.open_tensorboard("default", EXPERIMENT, JOB)["url"]
    chromium = require_tool("chromium", "install Debian's chromium package (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(extra_http_headers={"Authorization": f"token {client.token}"})
            page = context.new_page()
            page.goto(url)
            try:  # TensorBoard's own page draws a card per tag: the logged loss and the job's own accuracy
                for tag in ("loss", "accuracy"):
                    page.get_by_text(tag, exact=True).first.wait_for(timeout=90_000)
            finally:
                page.screenshot(path=str(tmp_path / "tensorboard.png"))
        finally:
            browser.close()


def test_tensorboard_opens_through_the_server_with_the_token_and_stops_with_it(finished_job):
    """Runs last in this module: it stops the module's server."""
    server, client, _uri = finished_job
    opened = client.open_tensorboard("default", EXPERIMENT, JOB)
    assert opened["runs"] == [f"{JOB}/metrics", f"{JOB}/outputs/MODEL", f"{JOB}/outputs/TENSORBOARD"]
    page = opened["url"]
    assert page.startswith(server.url)
    auth = {"Authorization": f"token {client.token}"}

    refused = requests.get(page, allow_redirects=False, timeout=30)
    assert refused.status_code in (302, 403), refused.status_code  # a login, never TensorBoard
    assert "TensorBoard" not in refused.text

    html = requests.get(page, headers=auth, timeout=60)
    assert html.status_code == 200, html.status_code
    assert "<tb-webapp>" in html.text, html.text[:500]
    script = requests.get(f"{page}index.js", headers=auth, timeout=60)  # the page's own relative URLs work
    assert script.status_code == 200 and len(script.content) > 100_000

    def scalars(run: str, tag: str):
        reply = requests.get(
            f"{page}data/plugin/scalars/scalars", params={"run": run, "tag": tag}, headers=auth, timeout=30
        )
        return reply.json() if reply.status_code == 200 else None

    loss = wait_for(lambda: scalars(f"{JOB}/metrics", "loss"), "TensorBoard's loss scalars of the job")
    assert [(step, value) for _time, step, value in loss] == list(enumerate(LOSSES))
    own = wait_for(lambda: scalars(f"{JOB}/outputs/TENSORBOARD", "accuracy"), "the job's own scalars")
    assert [(step, value) for _time, step, value in own] == [(3, 0.75)]

    pid_file = glob.glob(str(server.base / "home" / "tensorboard" / opened["id"] / "tensorboard.pid"))[0]
    pid = int(open(pid_file).read())
    server.stop()
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
