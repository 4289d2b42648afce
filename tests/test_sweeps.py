"""Sweeps on a real `batchai serve` and a 2-node local cluster: random and TPE samplers over a cheap objective,
at most 2 trials at once, the best trial the true best, median stopping that prunes clearly worse trials (judged
from their logged curves), and a kill -9 of the service mid-sweep that neither loses nor re-runs a trial."""

from __future__ import annotations

import json

from batchai_jupyter.errors import BatchAIError
from batchai_jupyter.notebook.widgets.sweep_monitor import SweepMonitor
from batchai_jupyter.notebook.workspace import Workspace
from helpers.api import make_cluster
from helpers.cli import cli, ok
from helpers.gates import lines
from helpers.sweeps import curve, median_at, most_active_at_once, sweep_spec, write_trial
from helpers.waits import wait_for

EXPERIMENT = "default"


def trial_runs(client, sweep: str) -> dict[str, dict]:
    return {r["name"]: r for r in client.runs("default", EXPERIMENT) if r["name"].startswith(f"{sweep}-")}


def check_best(sweep: dict, trials: list[dict], runs: dict[str, dict]) -> None:
    """The sweep's best trial is the completed trial with the lowest final logged loss."""
    completed = [t for t in trials if t["state"] == "completed"]
    assert completed
    for trial in completed:  # a trial's value is the last loss its job logged
        assert trial["value"] == runs[trial["job"]]["metrics"]["loss"]["final"]
    best = min(completed, key=lambda t: runs[t["job"]]["metrics"]["loss"]["final"])
    assert sweep["bestTrial"]["job"] == best["job"] and sweep["bestTrial"]["value"] == best["value"]


def test_random_sweep_with_median_stopping(shared_service, shared_client, unique, tmp_path):
    client = shared_client
    cluster, name = unique("sw"), unique("rnd")
    make_cluster(client, cluster, nodes=2)
    command, started = write_trial(tmp_path)
    policy = {"policy": "median", "delayEvaluation": 1, "startupTrials": 2}
    spec = sweep_spec(name, cluster, command, sampler={"type": "random", "seed": 11}, earlyTermination=policy)
    spec_file = tmp_path / "sweep.json"
    spec_file.write_text(json.dumps(dict(spec, maxTrials=99, maxConcurrentTrials=9)))  # the options win
    created = json.loads(
        ok(cli(shared_service, "sweep", "create", "-f", str(spec_file), "--max-trials", "8", "--max-concurrent", "2"))
    )
    assert (created["name"], created["maxTrials"], created["maxConcurrentTrials"]) == (name, 8, 2)
    monitor = SweepMonitor(Workspace(client=client), EXPERIMENT, name, poll_min=0.2, poll_max=0.5)
    wait_for(
        lambda: monitor.state == "running" and any(len(points) >= 2 for points in monitor.curves.values()),
        "the monitor to show a running trial's curve",
        timeout=60,
    )
    sweep = client.wait_for_sweep("default", EXPERIMENT, name, timeout=180)
    trials = client.sweep_trials("default", EXPERIMENT, name)
    runs = trial_runs(client, name)

    assert sweep["state"] == "completed" and sweep["trialsStarted"] == 8
    assert [t["number"] for t in trials] == list(range(8))
    assert sorted(lines(started)) == sorted(t["job"] for t in trials), "each trial ran once"
    assert most_active_at_once(list(runs.values())) <= 2
    check_best(sweep, trials, runs)

    # Pruned trials: stopped by the sweep, and worse than the median of the trials completed before, at that step.
    pruned = [t for t in trials if t["state"] == "pruned"]
    completed = [t for t in trials if t["state"] == "completed"]
    assert pruned, f"median stopping pruned nothing: {[(t['params'], t['state']) for t in trials]}"
    for trial in pruned:
        job = client.job("default", EXPERIMENT, trial["job"])
        assert job["executionState"] == "failed"
        assert [e["code"] for e in job["executionInfo"]["errors"]] == ["TrialPruned"]
        assert runs[trial["job"]]["pruned"] is True
        earlier = [curve(client, EXPERIMENT, t["job"]) for t in completed if t["endTime"] < trial["prunedAt"]]
        step = trial["prunedStep"]
        assert step >= 1 and len(earlier) >= 2
        assert curve(client, EXPERIMENT, trial["job"])[step] > median_at(earlier, step)
    # Clearly worse trials never ran to the end: each completed trial that began once two trials had completed
    # was at no step worse than all of them.
    startup_end = sorted(t["endTime"] for t in completed)[1]
    for trial in completed:
        if runs[trial["job"]]["created"] < startup_end:
            continue
        own = curve(client, EXPERIMENT, trial["job"])
        before = [
            curve(client, EXPERIMENT, t["job"]) for t in completed if t["endTime"] <= runs[trial["job"]]["created"]
        ]
        assert all(own[step] <= max(c[step] for c in before) for step in range(1, 8))

    # The monitor followed it to the end: progress, best so far, the pruned trials greyed.
    wait_for(lambda: not monitor.poller.running, "the monitor to finish", timeout=30)
    assert monitor.progress.value == monitor.progress.max == 8
    assert sweep["bestTrial"]["job"] in monitor.best_view.value
    assert set(monitor.curves) == {t["job"] for t in trials}
    assert monitor.trials_view.value.count('data-state="pruned" style="opacity:0.45"') == len(pruned)
    assert monitor.plot.value.count('stroke="#9e9e9e"') == len(pruned)
    monitor.close()

    # The CLI shows the same sweep.
    shown = ok(cli(shared_service, "sweep", "list", "-e", EXPERIMENT))
    assert name in shown and "completed" in shown and "8/8" in shown
    table = ok(cli(shared_service, "sweep", "trials", "-e", EXPERIMENT, "-n", name))
    assert table.count("pruned") >= len(pruned) and f"{name}-7" in table


def test_tpe_sweep_survives_kill_9(service_process, client, unique, tmp_path):
    cluster, name = unique("sw"), unique("tpe")
    make_cluster(client, cluster, nodes=2)
    command, started = write_trial(tmp_path, steps=6, pause=0.4)
    spec = sweep_spec(name, cluster, command, sampler={"type": "tpe", "seed": 5, "startupTrials": 3})
    client.create_sweep("default", EXPERIMENT, spec)
    wait_for(
        lambda: client.sweep("default", EXPERIMENT, name)["trialsStarted"] >= 3 and len(lines(started)) >= 3,
        "three trials to have started",
        timeout=90,
    )
    before = {t["number"]: t for t in client.sweep_trials("default", EXPERIMENT, name)}
    service_process.kill()
    client = service_process.start()
    sweep = client.wait_for_sweep("default", EXPERIMENT, name, timeout=180)
    trials = client.sweep_trials("default", EXPERIMENT, name)
    runs = trial_runs(client, name)

    assert sweep["state"] == "completed" and sweep["trialCounts"]["completed"] == 8
    assert [t["number"] for t in trials] == list(range(8))
    for number, seen in before.items():  # the trials recorded before the kill are the same trials
        assert trials[number]["params"] == seen["params"] and trials[number]["job"] == seen["job"]
    assert sorted(lines(started)) == sorted(t["job"] for t in trials), "a trial was lost or ran twice"
    for trial in trials:  # each trial's job carries its parameters and ran one attempt
        job = client.job("default", EXPERIMENT, trial["job"])
        assert job["properties"]["params"] == trial["params"] and job["attempt"] == 1
    assert len({t["params"]["x"] for t in trials}) == 8
    assert most_active_at_once(list(runs.values())) <= 2
    check_best(sweep, trials, runs)


def test_a_cancelled_sweep_stops_its_trials_and_bad_sweeps_are_refused(shared_client, unique, tmp_path):
    client = shared_client
    cluster, name = unique("sw"), unique("cancel")
    make_cluster(client, cluster, nodes=2)
    command, started = write_trial(tmp_path, steps=200, pause=0.3)
    spec = sweep_spec(name, cluster, command, sampler={"type": "random", "seed": 2})
    spec["trial"]["secrets"] = {"API_KEY": "s3cret-value"}
    created = client.create_sweep("default", EXPERIMENT, spec)
    assert "s3cret-value" not in str(created)
    wait_for(lambda: len(lines(started)) == 2, "two trials to run")
    # A trial whose job someone deletes has failed: the sweep does not run it again, it starts the next one.
    client.delete_job("default", EXPERIMENT, f"{name}-0")
    wait_for(lambda: len(lines(started)) == 3, "the next trial to run")
    assert client.sweep_trials("default", EXPERIMENT, name)[0]["state"] == "failed"
    assert client.cancel_sweep("default", EXPERIMENT, name)["state"] == "cancelling"
    sweep = client.wait_for_sweep("default", EXPERIMENT, name, timeout=60)
    trials = client.sweep_trials("default", EXPERIMENT, name)
    assert sweep["state"] == "cancelled" and [t["state"] for t in trials] == ["failed", "cancelled", "cancelled"]
    assert sorted(lines(started)) == [f"{name}-{n}" for n in range(3)]
    trials = trials[1:]
    for trial in trials:
        job = client.job("default", EXPERIMENT, trial["job"])
        assert job["executionState"] == "failed" and job["executionInfo"]["errors"][0]["code"] == "SweepCancelled"
        assert job["properties"]["secrets"] == [{"name": "API_KEY"}]
    assert "s3cret-value" not in str(client.sweep_trials("default", EXPERIMENT, name))

    def refused(spec: dict, status: int, *fragments: str) -> None:
        try:
            client.create_sweep("default", EXPERIMENT, spec)
        except BatchAIError as failure:
            assert failure.status == status and all(f in failure.message for f in fragments), failure.message
        else:
            raise AssertionError(f"{spec} was accepted")

    refused(spec, 409, f"sweep '{name}' already exists")
    refused(dict(spec, name=unique("b"), parameters={"x": {"type": "uniform", "min": 1}}), 400, "parameters.x.max")
    refused(dict(spec, name=unique("b"), cluster="nowhere"), 404, "cluster 'nowhere' not found")
    refused(dict(spec, name=unique("b"), trial={"cluster": cluster}), 400, "toolkit")
    try:
        client.runs("default", EXPERIMENT, sort_by="no-such-metric")
    except BatchAIError as failure:
        assert failure.status == 400 and "no run logged a metric 'no-such-metric'" in failure.message
    else:
        raise AssertionError("sorting by a metric nobody logged was accepted")
    try:
        client.runs("default", "no-such-experiment")
    except BatchAIError as failure:
        assert failure.status == 404 and "experiment 'no-such-experiment' not found" in failure.message
    else:
        raise AssertionError("the runs of a missing experiment were listed")

    client.delete_sweep("default", EXPERIMENT, name)  # forgotten; its trials' jobs stay in the experiment
    assert name not in [s["name"] for s in client.sweeps("default", EXPERIMENT)]
    assert all(client.job("default", EXPERIMENT, t["job"])["executionState"] == "failed" for t in trials)
