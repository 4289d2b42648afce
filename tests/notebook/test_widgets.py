"""JobMonitor and ClusterMonitor: their state while a real job runs, and no thread left behind."""

from __future__ import annotations

import re

import ipywidgets

from batchai_jupyter.notebook.widgets import JobMonitor
from batchai_jupyter.notebook.widgets.render import elapsed
from helpers.api import make_cluster
from helpers.waits import wait_for

STEPPED_JOB = """%%batchai_job --cluster {cluster} --nodes 2 --framework pytorch
import os, time
from batchai_jupyter.runtime import log_metric
rank = int(os.environ["RANK"])
for step in range(6):
    print(f"rank {{rank}} step {{step}}", flush=True)
    log_metric("loss", 1.0 / (step + 1), step)
    log_metric("lr", 0.001 * 0.5 ** step, step)
    time.sleep(0.4)
if rank == 0:
    with open(os.path.join(os.environ["AZ_BATCHAI_OUTPUT_OUTPUTS"], "model.pt"), "wb") as handle:
        handle.write(b"0" * 2048)
"""


def test_job_monitor_follows_a_two_node_job(run, shared_client, unique):
    cluster = unique("wm")
    make_cluster(shared_client, cluster, nodes=2)
    job, out, err = run(STEPPED_JOB.format(cluster=cluster))
    monitor = job.monitor()
    assert isinstance(monitor, ipywidgets.VBox)
    assert monitor.children == (
        monitor.header,
        monitor.task_table,
        monitor.log_tabs,
        monitor.metrics_view,
        monitor.files_view,
        monitor.error_view,
    )
    seen = wait_for(
        lambda: monitor.state == "running" and "step 1" in monitor.log_text("0") and monitor.log_text("0"),
        "rank 0's log to show while running",
        timeout=120,
    )
    wait_for(lambda: len(monitor.log_text("0")) > len(seen), "rank 0's log to grow", timeout=60)
    ticking = _elapsed(monitor)  # a running job's time goes on between its log lines and events
    wait_for(lambda: monitor.state != "running" or _elapsed(monitor) != ticking, "the elapsed time to tick")
    wait_for(lambda: monitor.state == "succeeded" and not monitor.poller.running, "the monitor to finish", timeout=120)
    assert "rank 0 step 5" in monitor.log_text("0") and "rank 1 step 5" in monitor.log_text("1")
    assert set(monitor.task_logs) >= {"0", "1"}
    assert monitor.log_tabs.titles[-2:] == ("0", "1") or set(monitor.log_tabs.titles) >= {"0", "1"}
    assert ">succeeded<" in monitor.header.value and "exit code 0" in monitor.header.value
    assert re.search(r"elapsed \d+\.\d s", monitor.header.value) and _elapsed(monitor) != "0.0 s", monitor.header.value
    assert monitor.task_table.value.count(">exited<") >= 2
    assert [s for s, _ in monitor.metrics["loss"]] == [0, 1, 2, 3, 4, 5]
    assert monitor.metrics["loss"][-1][1] == 1 / 6
    # One plot per metric, each on its own y axis (loss and lr on one axis left lr flat); a metric's ranks share
    # its plot; labels in the theme's text colour.
    plots = monitor.metrics_view.value.split("<svg")[1:]
    assert len(plots) == 2, monitor.metrics_view.value
    loss_plot, lr_plot = sorted(plots, key=lambda plot: "lr " in plot)
    assert loss_plot.count("<polyline") == 2 and ">loss (rank 1) " in loss_plot and ">lr " not in loss_plot
    assert lr_plot.count("<polyline") == 2 and ">0.001</text>" in lr_plot and ">3.13e-05</text>" in lr_plot
    assert 'fill="currentColor">step 0</text>' in lr_plot
    assert "model.pt" in monitor.files_view.value and "2.0 KB" in monitor.files_view.value
    link = monitor.files_view.value.split('href="')[1].split('"')[0]
    assert "text-decoration:underline" in monitor.files_view.value  # looks like a link in Lab's widgets too
    assert link.startswith(shared_client.url) and "token" not in link
    # The link works through the authenticated endpoint (a browser sends its cookie; we send the token).
    assert shared_client.session.get(link.replace("&amp;", "&"), timeout=30).content == b"0" * 2048
    thread = monitor.poller.thread
    monitor.close()
    assert not thread.is_alive()


def _elapsed(monitor: JobMonitor) -> str:
    return re.search(r"elapsed ([^&<]+)", monitor.header.value).group(1).strip()


def test_elapsed_shows_short_jobs_to_a_tenth_of_a_second():
    start = "2026-01-01T00:00:00Z"
    assert elapsed(start, "2026-01-01T00:00:00.400Z") == "0.4 s"  # was 0:00:00
    assert elapsed(start, "2026-01-01T00:00:59.970Z") == "59.9 s"
    assert elapsed(start, "2026-01-01T00:02:05Z") == "2:05"
    assert elapsed(start, "2026-01-01T01:02:05.5Z") == "1:02:05"
    assert elapsed(None, None) == "-"  # not started


def test_closing_a_monitor_stops_its_thread(run, shared_client, unique):
    cluster = unique("wc")
    make_cluster(shared_client, cluster, nodes=1)
    job, _, _ = run(f"%%batchai_job --cluster {cluster}\nimport time\ntime.sleep(30)\n")
    monitor = JobMonitor(job)
    wait_for(lambda: monitor.state in ("queued", "running"), "the monitor's first update")
    assert monitor.poller.running
    thread = monitor.poller.thread
    monitor.close()
    assert not thread.is_alive() and not monitor.poller.running
    assert monitor.job.client.session.adapters["http://"].poolmanager.pools.keys() == set()  # connections closed
    job.terminate()


def test_job_monitor_shows_the_current_attempt_of_a_retried_job(run, shared_client, unique):
    cluster = unique("wr")
    make_cluster(shared_client, cluster, nodes=1)
    job, _, err = run(
        f"%%batchai_job --cluster {cluster} --retries 1\n"
        "import os, sys, time\nattempt = os.environ['AZ_BATCHAI_JOB_ATTEMPT']\n"
        "print('attempt', attempt, flush=True)\ntime.sleep(1)\nsys.exit(3 if attempt == '1' else 0)\n"
    )
    monitor = JobMonitor(job)
    try:
        wait_for(
            lambda: monitor.state == "succeeded" and not monitor.poller.running,
            "the retried job to finish",
            timeout=120,
        )
        assert monitor.info["attempt"] == 2
        assert monitor.log_text() == "attempt 2\n"
        assert job.logs() == "attempt 2\n"
    finally:
        monitor.close()


RANK_1_FAILS = """%%batchai_job --cluster {cluster} --nodes 2 --framework pytorch
import os, time
rank = int(os.environ["RANK"])
def check(rank):
    if rank == 1:
        raise ValueError(f"rank {{rank}} found a bad shard")
print(f"rank {{rank}} started", flush=True)
check(rank)
time.sleep(20)
"""


def test_a_failed_job_shows_its_failing_task_and_exception_first(run, shared_client, unique):
    cluster = unique("wf")
    make_cluster(shared_client, cluster, nodes=2)
    job, _, _ = run(RANK_1_FAILS.format(cluster=cluster))
    monitor = job.monitor()
    wait_for(lambda: monitor.state == "failed" and not monitor.poller.running, "the monitor to finish", timeout=120)
    # The failing rank's log is the open tab, and the headline quotes its exception.
    assert monitor.log_tabs.titles[monitor.log_tabs.selected_index] == "1"
    assert monitor.failure == "rank 1 failed (exit code 1): ValueError: rank 1 found a bad shard", monitor.failure
    assert "ValueError: rank 1 found a bad shard" in monitor.header.value
    # The traceback is the cell's own: no frame of our runner, line numbers as the notebook shows the cell
    # (the %%batchai_job line is line 1).
    stderr = monitor.task_logs["1"].stderr.value
    assert "_batchai_cell" not in stderr and "cellrunner" not in stderr, stderr
    assert 'File "<cell>", line 8, in <module>\n    check(rank)\n' in stderr, stderr
    assert 'File "<cell>", line 6, in check\n    raise ValueError(f"rank {rank} found a bad shard")\n' in stderr
    monitor.close()
