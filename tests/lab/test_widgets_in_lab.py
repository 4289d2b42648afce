"""The notebook widgets as a person sees them: a real `jupyter lab` whose kernel talks to a real
`batchai serve` (BATCHAI_URL/BATCHAI_TOKEN), a notebook run in headless Chromium, and the
ClusterMonitor and JobMonitor checked in the page's DOM while a 2-node job runs and after it ends.
Screenshots go to tests/lab/artifacts/ (or $BATCHAI_TEST_ARTIFACTS)."""

from __future__ import annotations

import importlib.util
import re
import sys

import nbformat
import pytest
import requests
from playwright.sync_api import expect

from helpers.lab import ARTIFACTS, LAB_TOKEN, LabServer
from helpers.service import TOKEN, kill_leftover_tasks

# True once a code cell's output carries the job monitor's final snapshot (its text/html fallback).
FINAL_SNAPSHOT_SAVED = """() => {
    const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
    for (let i = 0; i < cells.length; i++) {
        const outputs = cells.get(i).outputs;
        for (let j = 0; outputs && j < outputs.length; j++) {
            const html = outputs.get(j).data["text/html"];
            if (typeof html === "string" && html.includes('data-state="succeeded"')) return true;
        }
    }
    return false;
}"""
# (awaited in the page: the command's value, a widget, cannot come back to Python)
BACK_TO_THE_NOTEBOOK = (
    "async () => { await window.jupyterapp.commands.execute('docmanager:open', {path: 'widgets.ipynb'}) }"
)
DARK_THEME = (
    "async () => { await window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'}) }"
)
SLOW = 120_000  # ms: a small shared machine; none of this is a timing assertion

JOB_CELL = """%%batchai_job --cluster wpool --nodes 2 --framework pytorch --name lab-widget-job
import os, time
from batchai_jupyter.runtime import log_metric
rank = int(os.environ["RANK"])
for step in range(30):
    print(f"hello from rank {{rank}} step {{step}}", flush=True)
    log_metric("loss", 1.0 / (step + 1), step)
while not os.path.exists({gate!r}):
    time.sleep(0.1)
print(f"rank {{rank}} done", flush=True)
if rank == 0:
    with open(os.path.join(os.environ["AZ_BATCHAI_OUTPUT_OUTPUTS"], "model.pt"), "wb") as handle:
        handle.write(b"0" * 2048)
"""


@pytest.fixture
def widget_lab(service_process, client, tmp_path):
    """`jupyter lab` whose kernels use the test service (not the service inside the Lab server)."""
    if importlib.util.find_spec("jupyterlab_widgets") is None:
        pytest.fail(
            "jupyterlab_widgets (the ipywidgets 8 frontend for JupyterLab) is not installed; pip install -e '.[test]'"
        )
    (tmp_path / "lab").mkdir()
    lab = LabServer(tmp_path / "lab")
    lab.env.update(BATCHAI_URL=service_process.url, BATCHAI_TOKEN=TOKEN)
    lab.start()
    yield lab
    lab.stop()
    kill_leftover_tasks(lab.env["BATCHAI_HOME"])


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"widgets-{name}.png"))


def test_job_and_cluster_monitors_render_and_update_live_in_lab(widget_lab, browser, client, tmp_path):  # noqa: F811
    gate = tmp_path / "gate"
    cells = ["%load_ext batchai_jupyter", "%batchai_cluster create wpool --nodes 2", JOB_CELL.format(gate=str(gate))]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell) for cell in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, str(widget_lab.base / "notebooks" / "widgets.ipynb"))

    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    try:
        page.goto(f"{widget_lab.url}lab?token={LAB_TOKEN}")
        page.wait_for_selector("#jp-main-dock-panel", timeout=SLOW)
        # Opened by command once Lab is up (a /lab/tree/ URL can start a second kernel and drop the first).
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:open', {path: 'widgets.ipynb'})")
        page.wait_for_selector(".jp-Notebook", timeout=SLOW)
        page.evaluate("""async () => {
            const context = window.jupyterapp.shell.currentWidget.context;
            await context.sessionContext.ready;
            await context.sessionContext.session.kernel.info;
        }""")
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

        outputs = page.locator(".jp-Notebook .jp-Cell .jp-OutputArea")
        cluster_view = outputs.nth(1).locator(".widget-vbox").first
        job_view = outputs.nth(2).locator(".widget-vbox").first
        expect(job_view).to_be_visible(timeout=SLOW)
        parts = job_view.locator(":scope > .widget-html")
        header, task_table = parts.nth(0), parts.nth(1)

        # While the job runs (held at the gate): live state, tasks, logs and node counts.
        expect(header.locator("span").first).to_have_text("running", timeout=SLOW)
        rank0 = job_view.locator('pre.batchai-log[data-task="0"][data-stream="stdout"]')
        expect(rank0).to_contain_text("hello from rank 0 step 29", timeout=SLOW)
        expect(rank0).to_be_visible()  # the first tab is rank 0's (not an empty node-preparation tab)
        expect(rank0).not_to_contain_text("rank 0 done")
        expect(cluster_view).to_contain_text("running 2", timeout=SLOW)
        expect(job_view.locator("svg polyline").first).to_be_attached(timeout=SLOW)  # log_metric's plot
        job_view.scroll_into_view_if_needed()
        shot(page, "01-job-running")

        gate.touch()
        expect(header.locator("span").first).to_have_text("succeeded", timeout=SLOW)
        # Once the job has ended the monitor refreshes the snapshot saved with the notebook, and Lab renders the
        # output anew: what follows acts on that final rendering, not on one about to be replaced.
        page.wait_for_function(FINAL_SNAPSHOT_SAVED, timeout=SLOW)
        expect(header).to_contain_text("exit code 0")
        expect(task_table.locator("tbody tr")).to_have_count(2, timeout=SLOW)
        expect(task_table.locator("tbody")).to_contain_text("rank 0")
        expect(task_table.locator("tbody")).to_contain_text("rank 1")
        expect(rank0).to_contain_text("rank 0 done", timeout=SLOW)
        # One tab a rank (a node preparation's tab may come after them when it wrote something)
        tabs = job_view.locator(".widget-tab .lm-TabBar-tab").filter(has_text=re.compile(r"^\d+$"))
        expect(tabs).to_have_text(["0", "1"], timeout=SLOW)
        tabs.nth(1).click()
        rank1 = job_view.locator('pre.batchai-log[data-task="1"][data-stream="stdout"]')
        expect(rank1).to_be_visible(timeout=SLOW)
        expect(rank1).to_contain_text("hello from rank 1 step 0")
        expect(rank1).to_contain_text("rank 1 done", timeout=SLOW)
        # 31 lines overflow the log box, which shows its end (the newest lines), not its start.
        scroll = page.evaluate(
            "(pre) => { const box = pre.parentElement; return [box.scrollHeight, box.clientHeight, box.scrollTop] }",
            rank1.element_handle(),
        )
        assert scroll[0] > scroll[1] + 50 and abs(scroll[2]) < 2, scroll
        link = job_view.locator('a[download="model.pt"]')
        expect(link).to_be_attached(timeout=SLOW)
        expect(job_view).to_contain_text("2.0 KB")
        href = link.get_attribute("href")
        assert href.startswith(client.url) and "token" not in href, href
        reply = requests.get(href, headers={"Authorization": f"token {TOKEN}"}, timeout=60)
        assert reply.status_code == 200 and reply.content == b"0" * 2048

        # The header's link opens the job in the Batch AI panel's job view (Lab may ask before running a
        # command from an output: it is the user's own notebook, so they run it).
        job_view.locator("button.batchai-open-job").click()
        ask = page.locator(".jp-Dialog")
        if ask.count():
            shot(page, "04-open-in-panel-asked")
            ask.get_by_role("button", name=re.compile("^Run")).first.click()
        # (Its content is read from the Lab server's own service, not this test's: only the view is checked.)
        opened = page.locator(".bai-JobView#batchai-job-default-default-lab-widget-job")
        expect(opened).to_be_visible(timeout=SLOW)
        expect(page.get_by_role("tabpanel", name="Job lab-widget-job")).to_be_visible()
        shot(page, "04-opened-in-panel")
        page.evaluate(BACK_TO_THE_NOTEBOOK)

        expect(cluster_view).to_contain_text("idle 2", timeout=SLOW)
        expect(cluster_view).to_contain_text("running 0")
        expect(cluster_view).to_contain_text("2 of 2 nodes")
        expect(cluster_view.locator("tbody tr")).to_have_count(2)
        job_view.scroll_into_view_if_needed()
        shot(page, "02-job-succeeded")
        cluster_view.scroll_into_view_if_needed()
        shot(page, "03-cluster")

        # The plot's axis labels take the theme's text colour: light on the dark theme (they were black).
        page.evaluate(DARK_THEME)
        page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=SLOW)
        page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=SLOW)
        axis_label = job_view.locator("svg text").first  # the y axis's top value
        fill = axis_label.evaluate("(text) => getComputedStyle(text).fill")
        assert sum(int(n) for n in re.findall(r"\d+", fill)[:3]) > 3 * 150, fill
        job_view.scroll_into_view_if_needed()
        shot(page, "05-job-dark-theme")
    except Exception:
        shot(page, "failure")
        print("\n".join(console[-60:]), file=sys.stderr)
        print(widget_lab.log(), file=sys.stderr)
        raise
    finally:
        context.close()
    assert client.job("default", "default", "lab-widget-job")["executionState"] == "succeeded"
