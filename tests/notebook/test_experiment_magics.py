"""The run history of an experiment through REST, the SDK, the CLI and %batchai_runs (its RunCompare widget),
and %%batchai_sweep: a cell swept on a real service, watched by its SweepMonitor."""

from __future__ import annotations

import json
import sys

from batchai_jupyter.notebook.widgets.run_compare import RunCompare
from batchai_jupyter.notebook.widgets.sweep_monitor import SweepMonitor
from helpers.api import make_cluster, wait_job
from helpers.cli import cli, ok
from helpers.waits import wait_for

SCRIPT = """
import sys, time
from batchai_jupyter.runtime import log_metric
lr = float(sys.argv[sys.argv.index("--lr") + 1])
for step in range(4):
    log_metric("loss", lr * 10 / (step + 1), step)
    log_metric("accuracy", 1 - lr / (step + 1), step)
time.sleep(0.2)
"""


def test_run_history_through_rest_sdk_cli_and_magic(run, ws, shared_service, shared_client, unique, tmp_path):
    client = shared_client
    cluster, experiment = unique("rh"), unique("exp")
    make_cluster(client, cluster, nodes=2)
    client.create_experiment("default", experiment)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    learning_rates = {"a": 0.3, "b": 0.1, "c": 0.2}
    for name, lr in learning_rates.items():
        spec = {
            "cluster": cluster,
            "customToolkitSettings": {"commandLine": f"{sys.executable} {script} --lr {lr} --layers=3"},
            "environmentVariables": {"EPOCHS": "4"},
            "params": {"optimizer": "sgd", "run": name},
        }
        client.create_job("default", experiment, spec, name)
    for name in learning_rates:
        assert wait_job(client, name, experiment=experiment)["executionState"] == "succeeded"

    # REST (through the client): sorted by the final loss, with params from all three sources.
    runs = client.runs("default", experiment, sort_by="loss")
    assert [r["name"] for r in runs] == ["b", "c", "a"]
    first = runs[0]
    assert first["params"] == {"EPOCHS": "4", "lr": "0.1", "layers": "3", "optimizer": "sgd", "run": "b"}
    assert first["metrics"]["loss"] == {"final": 0.25, "min": 0.25, "max": 1.0, "count": 4, "lastStep": 3}
    assert first["state"] == "succeeded" and not first["pruned"] and first["duration"] > 0
    assert 0 < first["nodeHours"] < 0.1 and first["nodeCount"] == 1
    by_accuracy = client.runs("default", experiment, sort_by="accuracy.min", descending=True)
    assert [r["name"] for r in by_accuracy] == ["b", "c", "a"]
    series = client.run_metrics("default", experiment, "a", ["loss"])
    assert series["metrics"]["loss"] == [[0, 3.0], [1, 1.5], [2, 1.0], [3, 0.75]]

    # The SDK.
    assert [r["name"] for r in ws.experiments.runs(experiment, sort_by="loss", descending=True)] == ["a", "c", "b"]

    # The CLI: a table in that order, or JSON.
    table = ok(cli(shared_service, "experiment", "runs", "-n", experiment, "--sort-by", "loss")).splitlines()
    assert table[0].split()[:4] == ["Name", "State", "Duration", "(s)"]
    assert [line.split()[0] for line in table[2:]] == ["b", "c", "a"]
    assert "0.25" in table[2] and "sgd" in table[2]
    listed = json.loads(ok(cli(shared_service, "experiment", "runs", "-n", experiment, "-o", "json")))
    assert {r["name"] for r in listed} == {"a", "b", "c"}
    refused = cli(shared_service, "experiment", "runs", "-n", experiment, "--sort-by", "nope")
    assert refused.returncode == 1 and "no run logged a metric 'nope'" in refused.stderr

    # The magic: a RunCompare widget, sortable, with the curves of the selected runs overlaid.
    compare, out, err = run(f"%batchai_runs {experiment} --sort-by loss")
    assert isinstance(compare, RunCompare), (out, err)
    rows = compare.table.value.split("<tbody>")[1]
    assert rows.index(">b<") < rows.index(">c<") < rows.index(">a<")
    compare.descending.value = True
    rows = compare.table.value.split("<tbody>")[1]
    assert rows.index(">a<") < rows.index(">c<") < rows.index(">b<")
    compare.metric.value = "loss"
    compare.selected.value = ("a", "b")
    assert compare.plot.value.count("<polyline") == 2 and ">a 0.75<" in compare.plot.value
    assert compare.curves["b"]["loss"][0] == (0, 1.0)
    # Parallel coordinates: the parameters that differ (lr, run) and the loss, one line per run.
    assert compare.parallel.value.count('class="batchai-run"') == 3
    assert all(f">{axis}<" in compare.parallel.value for axis in ("lr", "run", "loss"))
    compare.close()
    _, out, _ = run(f"%batchai_runs {experiment} --sort-by loss --no-widget")
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["b", "c", "a"]


SWEEP_CELL = """%%batchai_sweep --name {name} --cluster {cluster} -e {experiment} --param "x=grid(1, 3, 6)" \
--sampler grid --max-concurrent 2 --metric loss --push offset
from batchai_jupyter.runtime import log_metric
for step in range(3):
    log_metric("loss", (x - 3) ** 2 + offset + 1.0 / (step + 1), step)
"""


def test_sweep_cell_with_its_monitor(run, shared_client, unique):
    cluster, experiment, name = unique("swc"), unique("exp"), unique("cell")
    make_cluster(shared_client, cluster, nodes=2)
    cell = SWEEP_CELL.format(name=name, cluster=cluster, experiment=experiment).replace(" \\\n", " ")
    run("offset = 0.5")
    monitor, out, err = run(cell)
    assert isinstance(monitor, SweepMonitor), (out, err)
    assert f"sweep '{name}' started: up to 3 trials, 2 at once" in out
    wait_for(
        lambda: not monitor.poller.running,
        "the sweep monitor to finish",
        timeout=120,
        explain=lambda: json.dumps([monitor.sweep, monitor.trials, monitor.error_view.value], indent=1),
    )
    assert monitor.state == "completed" and monitor.progress.value == 3
    best = monitor.sweep["bestTrial"]
    assert best["params"] == {"x": 3} and best["value"] == 0.5 + 1.0 / 3
    assert "best so far: <b>" in monitor.best_view.value and best["job"] in monitor.best_view.value
    assert monitor.plot.value.count("<polyline") == 3
    runs = {r["name"]: r for r in shared_client.runs("default", experiment)}
    assert runs[best["job"]]["params"] == {"offset": 0.5, "x": 3}
    monitor.close()
