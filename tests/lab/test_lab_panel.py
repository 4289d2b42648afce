"""The Batch AI panel in a real JupyterLab, driven by headless Chromium: jobs live, logs as they
grow, files, metrics, terminate, cluster create/resize/delete, commands. Screenshots of each step
are kept in tests/lab/artifacts/."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from playwright.sync_api import expect

from helpers.api import make_cluster, submit, wait_job
from helpers.lab import LabPage
from helpers.sweeps import sweep_spec, write_trial
from helpers.waits import wait_for

SLOW = 60_000  # ms: the machine is small and shared; nothing here is a timing assertion


def test_prebuilt_extension_is_installed_and_enabled():
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True, timeout=120
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    assert re.search(r"batchai-jupyter v\S+ enabled\s+OK \(python, batchai-jupyter\)", text), text


def test_panel_shows_a_job_live_and_its_growing_log(lab, lab_client, lab_page, tmp_path):
    page = lab_page.page
    expect(lab_page.panel.locator(".bai-Status")).to_have_text("Live", timeout=SLOW)
    make_cluster(lab_client, "panel-pool", nodes=1)
    expect(lab_page.cluster_row("panel-pool")).to_contain_text("1 idle", timeout=SLOW)
    go = tmp_path / "go"
    command = f"echo first-line-from-job; while [ ! -f {go} ]; do sleep 0.1; done; echo second-line-from-job"
    submit(lab_client, "live-job", "panel-pool", {"customToolkitSettings": {"commandLine": command}})

    row = lab_page.job_row("live-job")
    expect(row).to_have_attribute("data-state", re.compile("queued|running"), timeout=SLOW)
    lab_page.shot("01-job-running")

    row.get_by_role("link", name="Open job live-job").click()
    view = page.locator(".bai-JobView").filter(has_text="live-job")
    log = view.locator("pre.bai-Log")
    expect(log).to_contain_text("first-line-from-job", timeout=SLOW)
    expect(log).not_to_contain_text("second-line-from-job")
    lab_page.shot("02-job-log-first-line")

    # Each node's load, live, in the panel and in the job's view (a CPU figure needs a second sample).
    shared_cpu = re.compile(r"^CPU \d+% \(machine \d+%\)$")
    panel_node = lab_page.panel.locator("table[aria-label='Nodes'] tr[data-node-cluster='panel-pool']")
    expect(panel_node.locator("[data-load='CPU']")).to_have_text(shared_cpu, timeout=SLOW)
    shared_memory = re.compile(r"^Mem [\d.]+ [MG]iB \(machine [\d.]+/[\d.]+ GiB\)$")
    expect(panel_node.locator("[data-load='Mem']")).to_have_text(shared_memory)
    job_node = view.locator("table[aria-label='Job nodes'] tr[data-node]")
    expect(job_node.locator("[data-load='CPU']")).to_have_text(shared_cpu, timeout=SLOW)
    lab_page.shot("02b-node-load")

    go.touch()
    expect(log).to_contain_text("second-line-from-job", timeout=SLOW)
    expect(row).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    expect(row.locator(".bai-Exit")).to_have_text("0")
    expect(view.locator(".bai-JobSummary")).to_contain_text("succeeded", timeout=SLOW)
    lab_page.shot("03-job-succeeded")


def test_each_task_of_a_two_node_job_has_its_own_log(lab_client, lab_page, tmp_path):
    page = lab_page.page
    make_cluster(lab_client, "pair-pool", nodes=2)
    script = tmp_path / "hello_rank.py"
    script.write_text("import os\nprint('hello from rank', os.environ['RANK'])\n")
    submit(
        lab_client, "pair-job", "pair-pool", {"nodeCount": 2, "pyTorchSettings": {"pythonScriptFilePath": str(script)}}
    )
    assert wait_job(lab_client, "pair-job")["executionState"] == "succeeded"
    lab_page.command("batchai:open-job", {"experiment": "default", "name": "pair-job"})
    view = page.locator(".bai-JobView").filter(has_text="pair-job")
    expect(view.locator("tr[data-task]")).to_have_count(2, timeout=SLOW)
    log_files = view.get_by_label("Log file")
    expect(log_files.locator("option")).to_contain_text(
        ["stdout-0.txt", "stderr-0.txt", "stdout-1.txt", "stderr-1.txt", "execution-"], timeout=SLOW
    )
    log = view.locator("pre.bai-Log")
    expect(log).to_contain_text("hello from rank 0", timeout=SLOW)
    log_files.select_option("stdout-1.txt")
    expect(log).to_contain_text("hello from rank 1", timeout=SLOW)
    expect(log).not_to_contain_text("rank 0")
    lab_page.shot("04-per-task-logs")


def test_output_files_download_through_the_authenticated_endpoint(lab_client, lab_page):
    page = lab_page.page
    make_cluster(lab_client, "files-pool", nodes=1)
    command = "echo model-bytes > $AZ_BATCHAI_OUTPUT_MODEL/model.txt; echo done"
    submit(
        lab_client,
        "files-job",
        "files-pool",
        {
            "customToolkitSettings": {"commandLine": command},
            "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs"}],
        },
    )
    wait_job(lab_client, "files-job")
    lab_page.command("batchai:open-job", {"experiment": "default", "name": "files-job"})
    view = page.locator(".bai-JobView").filter(has_text="files-job")
    view.get_by_label("Output directory").select_option("MODEL")
    entry = view.locator('li[data-file="model.txt"]')
    expect(entry).to_be_visible(timeout=SLOW)
    link = entry.get_by_role("link", name="Download model.txt")
    assert "/batchai/api/v1/" in link.get_attribute("href") and "files/content" in link.get_attribute("href")
    # It looks like the theme's links: the colour Lab gives links in rendered content.
    link_colour = [
        *lab_page.styles('li[data-file="model.txt"] a', "color", within="files-job"),
        lab_page.theme_colour("--jp-content-link-color"),
    ]
    assert link_colour[0] == link_colour[1], link_colour
    with page.expect_download(timeout=SLOW) as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename == "model.txt"
    with open(download.path()) as handle:
        assert handle.read() == "model-bytes\n"
    lab_page.shot("05-output-files")


def test_metrics_chart_draws_the_series_a_job_logs(lab_client, lab_page):
    page = lab_page.page
    make_cluster(lab_client, "metrics-pool", nodes=1)
    logging = "from batchai_jupyter.runtime import log_metric\nfor step in range(5): log_metric('loss', 1 / (step + 1))"
    command = f'{sys.executable} -c "{logging}"'
    submit(lab_client, "metrics-job", "metrics-pool", {"customToolkitSettings": {"commandLine": command}})
    assert wait_job(lab_client, "metrics-job")["executionState"] == "succeeded"
    lab_page.command("batchai:open-job", {"experiment": "default", "name": "metrics-job"})
    view = page.locator(".bai-JobView").filter(has_text="metrics-job")
    chart = view.locator('figure[data-metric="loss"]')
    expect(chart).to_be_visible(timeout=SLOW)
    expect(chart.locator("figcaption")).to_contain_text("last: 0.2")
    assert len(chart.locator("polyline").get_attribute("points").split()) == 5
    chart.scroll_into_view_if_needed()
    lab_page.shot("05-metrics-chart")


def test_terminate_a_job_from_the_panel(lab_client, lab_page):
    make_cluster(lab_client, "term-pool", nodes=1)
    submit(
        lab_client, "endless-job", "term-pool", {"customToolkitSettings": {"commandLine": "echo started; sleep 600"}}
    )
    wait_for(
        lambda: lab_client.job("default", "default", "endless-job")["executionState"] == "running",
        "endless-job to run",
        timeout=120,
    )
    lab_page.open_panel()
    row = lab_page.job_row("endless-job")
    expect(row).to_have_attribute("data-state", "running", timeout=SLOW)
    expect(row.locator(".bai-Duration")).to_have_text(re.compile(r"^(?!0:00$)\d+:\d\d"), timeout=SLOW)  # counts up
    dialog = lab_page.page.locator(".jp-Dialog")
    row.get_by_role("button", name="Terminate job endless-job").click()
    expect(dialog).to_contain_text("Terminate job endless-job?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert lab_client.job("default", "default", "endless-job")["executionState"] == "running"
    row.get_by_role("button", name="Terminate job endless-job").click()
    dialog.get_by_role("button", name="Terminate").click()
    expect(row).to_have_attribute("data-state", re.compile("failed|succeeded"), timeout=SLOW)
    job = lab_client.job("default", "default", "endless-job")
    assert job["executionState"] == "failed"
    assert "terminated" in json.dumps(job["executionInfo"]["errors"]).lower()
    expect(row).to_have_attribute("data-outcome", "terminated")
    expect(row.locator(".bai-State")).to_have_text("terminated")
    expect(row.get_by_role("button", name="Terminate job endless-job")).to_have_count(0)
    lab_page.shot("06-job-terminated")


def test_delete_a_job_from_the_panel_after_confirmation(lab_client, lab_page):
    page = lab_page.page
    make_cluster(lab_client, "delete-pool", nodes=1)
    submit(lab_client, "doomed-job", "delete-pool", {"customToolkitSettings": {"commandLine": "echo bye"}})
    wait_job(lab_client, "doomed-job")
    lab_page.open_panel()
    row = lab_page.job_row("doomed-job")
    expect(row).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    row.get_by_role("button", name="Delete job doomed-job").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Delete job doomed-job?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(row).to_be_visible()
    row.get_by_role("button", name="Delete job doomed-job").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0, timeout=SLOW)
    assert all(j["name"] != "doomed-job" for j in lab_client.list("workspaces/default/jobs"))


def test_jobs_filter_by_state_and_experiment(lab_client, lab_page):
    make_cluster(lab_client, "filter-pool", nodes=1)
    lab_client.create_experiment("default", "sweep")
    submit(
        lab_client,
        "other-exp-job",
        "filter-pool",
        {"customToolkitSettings": {"commandLine": "true"}},
        experiment="sweep",
    )
    wait_job(lab_client, "other-exp-job", experiment="sweep")
    panel = lab_page.panel
    expect(lab_page.job_row("other-exp-job")).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    panel.get_by_label("Filter jobs by experiment").select_option("sweep")
    expect(panel.locator("tr[data-job]")).to_have_count(1)
    expect(lab_page.job_row("other-exp-job")).to_be_visible()
    panel.get_by_label("Filter jobs by experiment").select_option("")
    panel.get_by_label("Filter jobs by state").select_option("failed")
    expect(lab_page.job_row("other-exp-job")).to_have_count(0)
    for row in panel.locator("tr[data-job]").all():
        assert row.get_attribute("data-state") == "failed"
    panel.get_by_label("Filter jobs by state").select_option("")


def test_create_resize_and_delete_a_cluster_from_the_panel(lab_client, lab_page):
    page = lab_page.page
    lab_page.open_panel()
    lab_page.panel.get_by_role("button", name="Create a cluster").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator('input[name="name"]').fill("bad name!")
    lab_page.shot("07-cluster-form")
    dialog.get_by_role("button", name="Create").click()
    expect(dialog.locator(".bai-Error")).to_contain_text("Name:", timeout=SLOW)
    lab_page.shot("08-cluster-form-error")
    dialog.locator('input[name="name"]').fill("from-form")
    dialog.locator('input[name="nodes"]').fill("1")
    dialog.get_by_role("button", name="Create").click()
    row = lab_page.cluster_row("from-form")
    expect(row).to_contain_text("1 idle", timeout=SLOW)
    cluster = lab_client.get(lab_client.cluster_path("default", "from-form"))
    assert cluster["backend"] == "local" and cluster["targetNodeCount"] == 1
    lab_page.shot("09-cluster-created")

    row.get_by_role("button", name="Resize cluster from-form").click()
    page.locator(".jp-Dialog input").fill("2")
    page.locator(".jp-Dialog").get_by_role("button", name="Ok").click()
    expect(row).to_contain_text("2 idle", timeout=SLOW)
    assert lab_client.get(lab_client.cluster_path("default", "from-form"))["targetNodeCount"] == 2

    row.get_by_role("button", name="Delete cluster from-form").click()
    expect(page.locator(".jp-Dialog")).to_contain_text("Delete cluster from-form?")
    lab_page.shot("10-cluster-delete-confirm")
    page.locator(".jp-Dialog").get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0, timeout=SLOW)
    assert all(c["name"] != "from-form" for c in lab_client.clusters("default"))


def test_an_auto_scaling_cluster_from_the_form(lab_client, lab_page):
    page = lab_page.page
    lab_page.open_panel()
    lab_page.panel.get_by_role("button", name="Create a cluster").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator('input[name="name"]').fill("auto-form")
    dialog.locator('select[name="scaleMode"]').select_option("auto")
    expect(dialog.locator('input[name="nodes"]')).to_be_hidden()
    dialog.locator('input[name="minNodes"]').fill("0")
    dialog.locator('input[name="maxNodes"]').fill("3")
    dialog.locator('input[name="idleSeconds"]').fill("30")
    dialog.get_by_role("button", name="Create").click()
    row = lab_page.cluster_row("auto-form")
    expect(row).to_contain_text("auto: 0–3 nodes", timeout=SLOW)
    properties = lab_client.get(lab_client.cluster_path("default", "auto-form"))["properties"]
    assert properties["scaleSettings"]["autoScale"]["maximumNodeCount"] == 3
    assert properties["idleSecondsBeforeScaledown"] == 30
    lab_page.shot("10b-auto-cluster")


def test_api_errors_are_shown_as_readable_messages(lab_client, lab_page):
    page = lab_page.page
    lab_page.open_panel()
    lab_page.panel.get_by_role("button", name="Create a cluster").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator('input[name="name"]').fill("panel-pool")  # exists already: the service refuses it
    dialog.get_by_role("button", name="Create").click()
    error = dialog.locator(".bai-Error")
    expect(error).to_contain_text("The service refused the cluster:", timeout=SLOW)
    expect(error).to_contain_text("panel-pool")
    assert "Traceback" not in error.inner_text()
    lab_page.shot("11-api-error")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)


def test_palette_command_inserts_a_batchai_job_cell(lab_page):
    page = lab_page.page
    lab_page.command("notebook:create-new", {"kernelName": "python3"})
    notebook = page.locator(".jp-NotebookPanel").last
    expect(notebook).to_be_visible(timeout=SLOW)
    notebook.locator(".jp-Cell").first.click()
    palette = page.locator(".lm-CommandPalette-input")
    cells = notebook.locator(".jp-Cell")

    def insert_from_palette():
        page.keyboard.press("Control+Shift+C")
        palette.fill("Insert %%batchai_job")
        page.locator(".lm-CommandPalette-item", has_text="Insert %%batchai_job Cell").first.click()

    insert_from_palette()
    # The empty first cell is reused for loading the magics, the job cell follows.
    expect(cells.first).to_contain_text("%load_ext batchai_jupyter", timeout=SLOW)
    expect(cells).to_have_count(2)
    expect(cells.nth(1)).to_contain_text("%%batchai_job")
    insert_from_palette()  # the magics are loaded already: only a job cell this time
    expect(cells).to_have_count(3, timeout=SLOW)
    expect(cells.nth(2)).to_contain_text("%%batchai_job")
    expect(notebook.locator(".jp-Cell", has_text="%load_ext batchai_jupyter")).to_have_count(1)
    lab_page.shot("12-job-cell-inserted")


def test_the_inserted_cells_run_a_job_the_panel_shows(lab_client, lab_page):
    page = lab_page.page
    before = {job["name"] for job in lab_client.list("workspaces/default/jobs")}
    lab_page.command("notebook:create-new", {"kernelName": "python3"})
    notebook = page.locator(".jp-NotebookPanel").last
    expect(notebook.locator(".jp-Cell")).to_have_count(1, timeout=SLOW)
    lab_page.command("batchai:insert-job-cell", {"cluster": "panel-pool"})
    expect(notebook.locator(".jp-Cell")).to_have_count(2, timeout=SLOW)
    lab_page.command("notebook:run-all-cells")
    new_job = wait_for(
        lambda: [j for j in lab_client.list("workspaces/default/jobs") if j["name"] not in before],
        "the notebook's job to be submitted",
        timeout=120,
    )[0]
    assert new_job["cluster"] == "panel-pool"
    lab_page.open_panel()
    row = lab_page.job_row(new_job["name"])
    expect(row).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    row.get_by_role("link", name=f"Open job {new_job['name']}").click()
    view = page.locator(".bai-JobView").filter(has_text=new_job["name"])
    expect(view.locator("pre.bai-Log")).to_contain_text("hello from", timeout=SLOW)
    lab_page.shot("12b-notebook-job-in-panel")


def test_palette_opens_a_job_picked_from_a_searchable_list(lab_client, lab_page):
    page = lab_page.page
    page.keyboard.press("Control+Shift+C")
    page.locator(".lm-CommandPalette-input").fill("Batch AI: Open Job")
    page.locator(".lm-CommandPalette-item", has_text="Open Job").first.click()
    dialog = page.locator(".jp-Dialog")
    items = dialog.locator("li.bai-PickerItem")
    names = {job["name"] for job in lab_client.list("workspaces/default/jobs")}
    expect(items).to_have_count(len(names), timeout=SLOW)
    assert {items.nth(i).get_attribute("data-job") for i in range(items.count())} == names
    lab_page.shot("15a-job-picker")
    dialog.get_by_label("Filter jobs").fill("live")
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-job", "live-job")
    items.first.click()
    dialog.get_by_role("button", name="Open").click()
    view = page.locator(".bai-JobView").filter(has_text="live-job")
    expect(view.locator(".bai-JobSummary")).to_contain_text("succeeded", timeout=SLOW)
    expect(view.locator("pre.bai-Log")).to_contain_text("second-line-from-job", timeout=SLOW)


def test_open_job_and_experiment_views_are_restored_after_a_reload(lab_page):
    page = lab_page.page
    lab_page.command("batchai:open-experiment", {"experiment": "default"})
    expect(page.locator(".bai-ExperimentView")).to_be_visible(timeout=SLOW)
    lab_page.command("batchai:open-job", {"experiment": "default", "name": "pair-job"})
    expect(page.locator(".bai-JobView").filter(has_text="pair-job")).to_be_visible(timeout=SLOW)
    # The layout is saved to the workspace as it changes; wait until the saved layout names both views,
    # then reload. (Polled from here: wait_for_function would take the async predicate's promise as true.)
    saved_layout = """async () => JSON.stringify(
        (await window.jupyterapp.serviceManager.workspaces.fetch('default')).data['layout-restorer:data'] ?? null)"""
    views = ("batchai-job:default/default/pair-job", "batchai-experiment:default/default")
    wait_for(lambda: all(view in page.evaluate(saved_layout) for view in views), "the saved layout to name both views")
    lab_page.open()
    view = page.locator(".bai-JobView").filter(has_text="pair-job")
    expect(view.locator(".bai-JobSummary")).to_contain_text("succeeded", timeout=SLOW)
    expect(view.locator("pre.bai-Log")).to_contain_text("hello from rank 0", timeout=SLOW)
    page.locator("#jp-main-dock-panel .lm-TabBar-tab").filter(has_text="Experiment default").click()
    experiment = page.locator(".bai-ExperimentView")
    expect(experiment.locator("table.bai-Runs")).to_contain_text("pair-job", timeout=SLOW)
    lab_page.shot("15b-restored-after-reload")


def test_a_failed_rank_is_red_and_its_view_opens_its_stderr_first(lab_client, lab_page, tmp_path):
    """Rank 1 raises: the view's headline quotes the exception, rank 1's badge is red, its stderr shows first,
    and clicking a task's row opens that task's log."""
    page = lab_page.page
    script = tmp_path / "rank_one_raises.py"
    done = tmp_path / "rank0-done"  # rank 1 fails only once rank 0 has written its line
    script.write_text(
        "import os, pathlib, time\nrank = int(os.environ['RANK'])\nprint('working on rank', rank, flush=True)\n"
        f"done = pathlib.Path({str(done)!r})\n"
        "if rank == 0:\n    done.touch()\n"
        "else:\n    while not done.exists():\n        time.sleep(0.05)\n"
        "    raise ValueError('bad shape on rank 1')\n"
    )
    spec = {"nodeCount": 2, "pyTorchSettings": {"pythonScriptFilePath": str(script)}}
    submit(lab_client, "rank1-fails", "pair-pool", spec)
    assert wait_job(lab_client, "rank1-fails")["executionState"] == "failed"
    lab_page.command("batchai:open-job", {"experiment": "default", "name": "rank1-fails"})
    view = page.locator(".bai-JobView").filter(has_text="rank1-fails")
    headline = view.locator(".bai-JobSummary .bai-Failure")
    expect(headline).to_have_text(
        re.compile(r"^\S+ 1 failed \(exit code 1\): ValueError: bad shape on rank 1$"), timeout=SLOW
    )
    rows = view.locator("tr[data-task]")
    expect(rows).to_have_count(2, timeout=SLOW)
    tasks = {t["index"]: t for t in lab_client.list("workspaces/default/experiments/default/jobs/rank1-fails/tasks")}
    # The headline is the service's failure summary of the job, rendered as it comes.
    failure = wait_job(lab_client, "rank1-fails")["failure"]
    assert (failure["task"], failure["log"]) == (tasks[1]["name"], tasks[1]["stderr"])
    expect(headline).to_have_text(failure["headline"])
    expect(headline).to_have_attribute("data-task", failure["task"])
    failed_row = view.locator(f'tr[data-task="{tasks[1]["name"]}"]')
    expect(failed_row).to_have_attribute("data-outcome", "failed")
    badge = f'tr[data-task="{tasks[1]["name"]}"] .bai-State'
    (badge_colour,) = lab_page.styles(badge, "color", within="rank1-fails", pseudo="::before")
    error_colour = lab_page.theme_colour("--jp-error-color1")
    assert badge_colour == error_colour, (badge_colour, error_colour)
    log = view.locator("pre.bai-Log")
    expect(view.get_by_label("Log file")).to_have_value(tasks[1]["stderr"], timeout=SLOW)
    expect(log).to_contain_text("ValueError: bad shape on rank 1", timeout=SLOW)
    assert log.inner_text().count("Traceback") == 1, log.inner_text()  # read once, not twice from offset 0
    lab_page.shot("16-failed-rank-stderr-first")

    view.locator(f'tr[data-task="{tasks[0]["name"]}"]').click()
    expect(log).to_contain_text("working on rank 0", timeout=SLOW)
    expect(log).not_to_contain_text("ValueError")
    failed_row.get_by_role("link").click()
    expect(log).to_contain_text("ValueError: bad shape on rank 1", timeout=SLOW)
    assert log.inner_text().count("Traceback") == 1, log.inner_text()
    expect(view.get_by_label("Log file")).to_have_value(tasks[1]["stderr"])


def test_the_cluster_form_offers_only_the_backends_this_service_has(lab_client, lab_page):
    page = lab_page.page
    lab_page.open_panel()
    backends = lab_client.list("backends")
    available = [b["name"] for b in backends if b["available"]]
    lab_page.panel.get_by_role("button", name="Create a cluster").click()
    dialog = page.locator(".jp-Dialog")
    options = dialog.locator('select[name="backend"] option')
    expect(options).to_have_count(len(available), timeout=SLOW)
    assert [options.nth(i).get_attribute("value") for i in range(options.count())] == available
    assert "azure" not in available  # no subscription is configured here
    for backend in backends:
        if not backend["available"]:
            expect(dialog.locator(".bai-NotOffered")).to_contain_text(backend["name"])
    hosts = dialog.locator('textarea[name="hosts"]')
    expect(hosts).to_be_hidden()
    dialog.locator('select[name="backend"]').select_option("ssh")
    expect(hosts).to_be_visible()
    expect(dialog.locator('input[name="user"]')).to_be_visible()
    expect(dialog.locator('input[name="keyFile"]')).to_be_visible()
    dialog.locator('input[name="name"]').fill("ssh-form")
    dialog.get_by_role("button", name="Create").click()
    expect(dialog.locator(".bai-Error")).to_contain_text("Hosts:", timeout=SLOW)
    lab_page.shot("17-cluster-form-ssh")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)


def test_the_panel_fits_a_300px_sidebar_in_both_themes(lab_client, lab_page):
    """A running job with a long name and both its actions beside ended ones: nothing sticks out sideways."""
    page = lab_page.page
    make_cluster(lab_client, "narrow-pool", nodes=1)
    submit(
        lab_client,
        "a-rather-long-job-name-0123",
        "narrow-pool",
        {"customToolkitSettings": {"commandLine": "sleep 600"}},
    )
    running = lab_page.job_row("a-rather-long-job-name-0123")
    expect(running).to_have_attribute("data-state", "running", timeout=SLOW)
    expect(running.get_by_role("button", name="Terminate job a-rather-long-job-name-0123")).to_be_visible()
    assert abs(lab_page.set_sidebar_width(300) - 300) <= 2
    try:
        for theme, light in (("JupyterLab Light", "true"), ("JupyterLab Dark", "false")):
            lab_page.command("apputils:change-theme", {"theme": theme})
            page.wait_for_function(f"document.body.dataset.jpThemeLight === '{light}'", timeout=SLOW)
            page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=SLOW)
            lab_page.open_panel()
            for table in ("Jobs", "Clusters", "Nodes"):
                assert lab_page.overflow(f"table[aria-label='{table}']") == 0, (theme, table)
            # The long name stays on one line, cut with an ellipsis, the whole of it in the tooltip.
            name = running.locator(".bai-Name")
            expect(name).to_have_attribute("title", "a-rather-long-job-name-0123")
            height, font_size, cut = lab_page.styles(
                '#batchai-panel tr[data-job="a-rather-long-job-name-0123"] .bai-Name',
                "height",
                "font-size",
                "text-overflow",
            )
            assert height < 2 * font_size and cut == "ellipsis", (height, font_size, cut)
            running.scroll_into_view_if_needed()
            lab_page.shot(f"13a-sidebar-300px-{'light' if light == 'true' else 'dark'}")
    finally:
        lab_page.command("apputils:change-theme", {"theme": "JupyterLab Light"})
        page.wait_for_function("document.body.dataset.jpThemeLight === 'true'", timeout=SLOW)
        lab_client.delete_job("default", "default", "a-rather-long-job-name-0123")


def test_dark_theme_uses_theme_colours(lab_page):
    page = lab_page.page
    lab_page.command("apputils:change-theme", {"theme": "JupyterLab Dark"})
    page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=SLOW)
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=SLOW)
    lab_page.open_panel()
    background = page.evaluate("getComputedStyle(document.querySelector('#batchai-panel')).backgroundColor")
    red, green, blue = (int(n) for n in re.findall(r"\d+", background)[:3])
    assert red + green + blue < 3 * 96, background
    lab_page.shot("13-dark-theme")
    # The metric plot's labels and axes take the dark theme's colours: light on the dark background.
    lab_page.command("batchai:open-job", {"experiment": "default", "name": "metrics-job"})
    label = page.locator(".bai-JobView").filter(has_text="metrics-job").locator(".bai-AxisLabel").first
    expect(label).to_be_visible(timeout=SLOW)
    (fill,) = lab_page.styles(".bai-AxisLabel", "fill", within="metrics-job")
    red, green, blue = (int(n) for n in re.findall(r"\d+", fill)[:3])
    assert red + green + blue > 3 * 128, fill
    lab_page.shot("13b-dark-theme-metrics")
    lab_page.command("apputils:change-theme", {"theme": "JupyterLab Light"})
    page.wait_for_function("document.body.dataset.jpThemeLight === 'true'", timeout=SLOW)


def test_without_the_event_stream_the_panel_polls_with_backoff(lab, lab_client, browser):
    """A proxy that drops server-sent events: the panel says so and still shows new jobs."""
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    try:
        context.route("**/batchai/api/v1/events*", lambda route: route.abort())
        page = LabPage(context.new_page(), lab)
        page.open()
        expect(page.panel.locator(".bai-Status")).to_contain_text("event stream lost; retrying", timeout=SLOW)
        make_cluster(lab_client, "poll-pool", nodes=1)
        submit(lab_client, "polled-job", "poll-pool", {"customToolkitSettings": {"commandLine": "echo polled"}})
        expect(page.job_row("polled-job")).to_have_attribute("data-state", "succeeded", timeout=SLOW)
        page.shot("14-polling-without-events")
    finally:
        context.close()


def test_experiment_view_watches_a_sweep_and_compares_its_runs(lab_client, lab_page, tmp_path):
    """A median-stopping sweep watched live in the experiment view: trials by state, pruned ones greyed, the
    best trial; then its runs in the table, sorted, two of them overlaid."""
    page = lab_page.page
    make_cluster(lab_client, "sweep-pool", nodes=2)
    lab_client.create_experiment("default", "lab-sweep")
    command, _started = write_trial(tmp_path)
    policy = {"policy": "median", "delayEvaluation": 1, "startupTrials": 2}
    spec = sweep_spec("lab-rnd", "sweep-pool", command, sampler={"type": "random", "seed": 11}, earlyTermination=policy)
    lab_client.create_sweep("default", "lab-sweep", spec)
    lab_page.command("batchai:open-experiment", {"experiment": "lab-sweep"})
    view = page.locator(".bai-ExperimentView").filter(has_text="lab-sweep")
    section = view.locator('.bai-Sweep[data-sweep="lab-rnd"]')
    # Live: a running trial's curve is drawn while it runs.
    running = section.locator('tr[data-state="running"]').first
    expect(running).to_be_visible(timeout=SLOW)
    lab_page.shot("15-sweep-running")

    sweep = lab_client.wait_for_sweep("default", "lab-sweep", "lab-rnd", timeout=240)
    trials = lab_client.sweep_trials("default", "lab-sweep", "lab-rnd")
    pruned = [t["job"] for t in trials if t["state"] == "pruned"]
    assert sweep["state"] == "completed" and pruned, [(t["params"], t["state"]) for t in trials]
    expect(section).to_have_attribute("data-state", "completed", timeout=SLOW)
    expect(section.locator("tr[data-trial]")).to_have_count(len(trials))
    expect(section.locator(".bai-ProgressText")).to_have_text(f"{len(trials)} of 8 trials done")
    for trial in trials:
        row = section.locator(f'tr[data-job="{trial["job"]}"]')
        expect(row).to_have_attribute("data-state", trial["state"])
        greyed = r"\bbai-Greyed\b" if trial["state"] == "pruned" else r"^(?!.*bai-Greyed)"
        expect(row).to_have_class(re.compile(greyed))
    best = sweep["bestTrial"]["job"]
    expect(section.locator(".bai-Best")).to_have_attribute("data-job", best)
    expect(section.locator(".bai-Best")).to_contain_text(f"trial #{sweep['bestTrial']['number']} ({best})")
    expect(section.locator(f'tr[data-job="{best}"]')).to_have_class(re.compile(r"\bbai-BestRow\b"))
    curves = section.locator("figure.bai-Overlay polyline")
    expect(curves).to_have_count(len(trials))
    expect(section.locator("figure.bai-Overlay polyline.bai-Greyed")).to_have_count(len(pruned))
    section.scroll_into_view_if_needed()
    lab_page.shot("16-sweep-completed")

    # The runs table: every trial is a run; by default the primary metric's final value, best first.
    runs = lab_client.runs("default", "lab-sweep")
    table = view.get_by_role("table", name="Runs")
    rows = table.locator("tr[data-run]")
    expect(rows).to_have_count(len(runs))
    by_loss = sorted(runs, key=lambda r: r["metrics"]["loss"]["final"])
    assert rows.first.get_attribute("data-run") == by_loss[0]["name"]
    for name in pruned:
        expect(table.locator(f'tr[data-run="{name}"]')).to_have_attribute("data-pruned", "")
    table.get_by_role("button", name="Sort runs by x").click()
    by_x = [r["name"] for r in sorted(runs, key=lambda r: float(r["params"]["x"]))]
    expect(rows.first).to_have_attribute("data-run", by_x[0])
    assert [row.get_attribute("data-run") for row in rows.all()] == by_x
    table.get_by_role("button", name=re.compile("^Sort runs by x")).click()  # again: descending
    expect(rows.first).to_have_attribute("data-run", by_x[-1])
    for name in by_x[:2]:
        table.get_by_label(f"Compare run {name}").check()
    compared = view.locator('figure.bai-Overlay[data-metric="loss"]').first
    expect(view.get_by_label("Compared runs").locator("polyline")).to_have_count(2, timeout=SLOW)
    expect(compared.locator(".bai-Legend li")).to_have_count(2)
    # Parameters against the metric: one line per run, pruned ones greyed.
    parallel = view.get_by_label("Parameters against the metric")
    expect(parallel.locator("polyline")).to_have_count(len(runs))
    expect(parallel.locator("polyline.bai-Greyed")).to_have_count(len(pruned))
    expect(parallel.locator("text.bai-AxisName")).to_have_text(["x", "loss"])
    view.get_by_label("Compared runs").scroll_into_view_if_needed()
    lab_page.shot("17-runs-compared")


def test_tensorboard_buttons_open_tensorboard_in_a_lab_tab(lab_page):
    """Over the sweep's experiment (the test above) and over one of its jobs: TensorBoard loads through the
    Jupyter server's proxy, behind the same login, and shows the logged loss."""
    page = lab_page.page

    def shows_loss(title: str) -> None:
        tab = page.locator(".jp-MainAreaWidget:visible").filter(has=page.locator(".bai-TensorBoard"))
        expect(page.locator("#jp-main-dock-panel .lm-TabBar-tab.jp-mod-current")).to_contain_text(title, timeout=SLOW)
        expect(tab.locator("iframe")).to_have_attribute("src", re.compile(r"/batchai/tensorboard/[0-9a-f]+/$"))
        expect(tab.frame_locator("iframe").get_by_text("loss", exact=True).first).to_be_visible(timeout=90_000)

    lab_page.command("batchai:open-experiment", {"experiment": "lab-sweep"})
    view = page.locator(".bai-ExperimentView").filter(has_text="lab-sweep")
    view.get_by_role("button", name="Open TensorBoard over experiment lab-sweep").click()
    shows_loss("TensorBoard: lab-sweep")
    lab_page.shot("18-tensorboard-experiment")

    lab_page.command("batchai:open-job", {"experiment": "lab-sweep", "name": "lab-rnd-0"})
    job_view = page.locator(".bai-JobView").filter(has_text="lab-rnd-0")
    job_view.get_by_role("button", name="Open TensorBoard over job lab-rnd-0").click()
    shows_loss("TensorBoard: lab-rnd-0")
    lab_page.shot("19-tensorboard-job")


def test_browser_console_has_no_errors_from_the_panel(lab_page):
    problems = [
        line for line in lab_page.console if "batchai" in line.lower() and line.startswith(("error", "pageerror"))
    ]
    assert not problems, problems
