"""The example notebooks, executed end to end twice with nbclient against a real service, outputs checked."""

from __future__ import annotations

import os
import shutil

import nbformat

from helpers.notebooks import execute_notebook

NOTEBOOKS = os.path.join(os.path.dirname(__file__), "..", "..", "notebooks")


def execute(name: str, service_process, client, tmp_path) -> list[str]:
    """Runs notebooks/<name> twice (Run All, then Run All again: the same folder and service), as a user
    does; returns each code cell's text output of the second run. A cell that fails in either run fails."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(os.path.join(NOTEBOOKS, name), work / name)
    outputs = []
    for _ in range(2):
        notebook = nbformat.read(str(work / name), as_version=4)
        assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
            f"{name} must be saved without outputs"
        )
        outputs = execute_notebook(notebook, service_process.url, client.token, str(work))
    return outputs


def test_quickstart(service_process, client, tmp_path):
    outputs = execute("quickstart.ipynb", service_process, client, tmp_path)
    text = "\n".join(outputs)
    assert "job hello succeeded" in text
    assert "hello from" in text and "as job hello" in text
    assert "['answer.txt']" in text
    assert "answer = 45" in text
    assert "ClusterMonitor" in outputs[1] or "VBox" in outputs[1]


def test_distributed_pytorch(service_process, client, tmp_path):
    outputs = execute("distributed-pytorch.ipynb", service_process, client, tmp_path)
    text = "\n".join(outputs)
    assert "job ddp-train succeeded" in text
    assert "rank 1/2: final loss" in text
    assert "['model.pt']" in text
    assert "data TRAIN: 2 file(s)" in text
    downloaded = [line for line in text.splitlines() if line.startswith("downloaded weights")][0]
    pulled = [line for line in text.splitlines() if line.startswith("pulled final_loss")][0]
    # The pulled weights are what the job computed and saved: the same as the downloaded model's.
    assert downloaded.split("weights ")[1] == pulled.split("weights ")[1]
    assert downloaded.split("weights ")[1] == "[2.0, -3.0, 0.5]"  # DDP found the weights the data was made with
    log = client.read_job_file("default", "default", "ddp-train", "metrics.jsonl").decode()
    assert log.count('"loss"') == 80  # 40 epochs on each of the 2 ranks, plotted live by the JobMonitor


def test_migrating_from_batch_ai(service_process, client, tmp_path):
    outputs = execute("migrating-from-batch-ai.ipynb", service_process, client, tmp_path)
    text = "\n".join(outputs)
    assert "nc6 STANDARD_D1" in text
    assert "execution state: succeeded" in text
    assert "hello from Batch AI job hello ['--epochs', '1']" in text
    assert "stdout.txt" in text
    assert "['model.txt']" in text
    assert "cell job sees ['AZ_BATCHAI_INPUT_BATCHAI_PACKAGE', 'AZ_BATCHAI_INPUT_SCRIPTS']" in text
    assert "job 'hello-cell' succeeded (exit code 0)" in text
    # Microsoft's azure-mgmt-batchai, unchanged but for the client's line (the ARM face, docs/arm-api.md).
    assert "Cluster state: steady Target: 1; Allocated: 1; Idle: 1" in text
    assert "Job state: succeeded ExitCode: 0" in text
    assert "hello from the SDK" in text and "['model.txt']" in text
    assert "deleted sdk-workspace" in text
