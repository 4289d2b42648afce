"""A notebook saved after its job ended and reopened without a kernel (nbconvert to HTML) shows what
happened: the monitor's snapshot (state, the failing task's error, the plot, output files) is the widget's
fallback representation, refreshed when the job ends."""

from __future__ import annotations

import nbformat
from nbconvert import HTMLExporter

from helpers.notebooks import execute_notebook

JOB = """%%batchai_job --cluster {cluster} --nodes 2 --framework pytorch --name {job}
import os
import torch.distributed as dist
from batchai_jupyter.runtime import log_metric
dist.init_process_group("gloo")
rank = dist.get_rank()
for step in range(3):
    log_metric("loss", 1.0 / (step + 1), step)
    print(f"rank {{rank}} step {{step}}", flush=True)
with open(os.path.join(os.environ["AZ_BATCHAI_OUTPUT_OUTPUTS"], f"part-{{rank}}.txt"), "w") as handle:
    handle.write("partial")
dist.barrier()  # rank 0 has printed all its lines before rank 1 fails (and the job with it)
if rank == 1:
    raise RuntimeError("rank 1 ran out of data")
"""


def test_a_saved_notebook_shows_the_ended_job_without_a_kernel(shared_service, shared_client, unique, tmp_path):
    cluster, job = unique("snap"), unique("snap-job")
    cells = [
        "%load_ext batchai_jupyter",
        f"%batchai_cluster create {cluster} --nodes 2 --exist-ok",
        JOB.format(cluster=cluster, job=job),
        # The displayed monitor's last update (its final snapshot) is sent before this cell ends.
        "job = _\njob.wait()\njob.displayed.poller.thread.join(60)\nprint('ended', job.state)",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    outputs = execute_notebook(notebook, shared_service.url, shared_client.token, str(tmp_path))
    assert "ended failed" in outputs[-1], outputs
    saved = tmp_path / "saved.ipynb"
    notebook.metadata.pop("widgets", None)  # JupyterLab's default: widget state is not saved
    nbformat.write(notebook, str(saved))

    reopened = nbformat.read(str(saved), as_version=4)
    monitor_output = [o for o in reopened.cells[2].outputs if "text/html" in o.get("data", {})]
    assert len(monitor_output) == 1, reopened.cells[2].outputs
    assert monitor_output[0].data["text/plain"] == (
        f"job default/{job}: failed (exit code 1); rank 1 failed (exit code 1): RuntimeError: rank 1 ran out of data"
    )
    html, _ = HTMLExporter().from_notebook_node(reopened)
    assert f"<b>cluster {cluster}</b>" in html.split('class="batchai-snapshot"', 2)[1]  # the ClusterMonitor's
    snapshot = html.split('class="batchai-snapshot" data-state="failed"', 1)[1]  # the JobMonitor's, final
    assert "rank 1 failed (exit code 1): RuntimeError: rank 1 ran out of data" in snapshot
    assert "rank 0 step 2" in snapshot and "rank 1 step 2" in snapshot  # each task's last lines
    assert '<details open=""><summary>log of task 1</summary>' in snapshot  # the failing task's log, opened
    assert "<svg" in snapshot and "polyline" in snapshot  # the loss plot
    assert "part-0.txt" in snapshot and "part-1.txt" in snapshot and "href=" in snapshot  # files, with links
    assert 'data-commandlinker-command="batchai:open-job"' in snapshot  # opens the job in Lab's Batch AI panel
    button = snapshot.split('class="batchai-open-job"', 1)[1].split(">", 1)[0]
    assert f'"experiment": "default", "name": "{job}"' in button, button
    assert "Error displaying widget" not in html


def test_a_wait_cell_in_a_real_kernel_prints_its_logs_once(shared_service, shared_client, unique, tmp_path):
    cluster = unique("once")
    cells = [
        "%load_ext batchai_jupyter",
        f"%batchai_cluster create {cluster} --nodes 1 --exist-ok --no-monitor",
        f"%%batchai_job --cluster {cluster} --wait\nprint('hello from the node')\n",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    outputs = execute_notebook(notebook, shared_service.url, shared_client.token, str(tmp_path))
    assert outputs[2].count("hello from the node") == 1, outputs[2]  # printed as it came, and only there
    assert "succeeded (exit code 0)" in outputs[2]
    # The monitor below it, as the kernel left its widgets: the log tabs folded behind "show logs".
    state = notebook.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    toggles = [m["state"] for m in state.values() if m["model_name"] == "ToggleButtonModel"]
    assert [(t["description"], t["value"]) for t in toggles] == [("show logs", False)], toggles
    tabs = [m["state"] for m in state.values() if m["model_name"] == "TabModel"]
    assert len(tabs) == 1 and state[tabs[0]["layout"].removeprefix("IPY_MODEL_")]["state"]["display"] == "none"
