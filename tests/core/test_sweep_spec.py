"""Sweep specs (parsed once, refused with the field named) and the optuna study rebuilt from stored trials,
without I/O."""

from __future__ import annotations

import optuna
import pytest

from batchai_jupyter.core.runs import argument_params, sorted_runs
from batchai_jupyter.core.spec import parse_job_spec
from batchai_jupyter.core.spec_codec import decode_job_spec, encode_job_spec
from batchai_jupyter.core.sweep_spec import StoredTrial, parse_sweep_spec, sweep_spec_from_stored, sweep_spec_to_stored
from batchai_jupyter.core.sweep_study import BanditPruner, SweepStudy
from batchai_jupyter.errors import BatchAIError, SpecError

TRIAL = {"cluster": "c", "customToolkitSettings": {"commandLine": "python t.py"}}


def sweep(**fields) -> dict:
    return {
        "name": "s",
        "trial": TRIAL,
        "parameters": {"x": {"type": "uniform", "min": 0, "max": 1}},
        "primaryMetric": "loss",
        "maxTrials": 4,
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"parameters": {"x": {"type": "normal"}}}, "parameters.x.type"),
        ({"parameters": {"x": {"type": "uniform", "min": 2, "max": 1}}}, "parameters.x.max"),
        ({"parameters": {"x": {"type": "loguniform", "min": 0, "max": 1}}}, "parameters.x.min"),
        ({"parameters": {"x": {"type": "quniform", "min": 0, "max": 1, "q": 0}}}, "parameters.x.q"),
        ({"parameters": {"x": {"type": "choice", "values": []}}}, "parameters.x.values"),
        ({"parameters": {"1x": {"type": "choice", "values": [1]}}}, "parameters.1x"),
        ({"sampler": "hyperband"}, "sampler"),
        ({"sampler": "grid"}, "the grid sampler enumerates values"),
        ({"maxTrials": None}, "maxTrials is required"),
        ({"maxTrials": 5000}, "maxTrials"),
        ({"goal": "up"}, "goal"),
        ({"earlyTermination": {"policy": "bandit"}}, "slackFactor"),
        ({"earlyTermination": {"policy": "magic"}}, "earlyTermination.policy"),
        ({"trial": {"cluster": "c"}}, "toolkit"),
        ({"name": "x" * 61}, "at most 60 characters"),
    ],
)
def test_bad_sweep_specs_name_the_field(fields, fragment):
    with pytest.raises(SpecError) as refused:
        parse_sweep_spec(sweep(**fields))
    assert fragment in refused.value.message


def test_a_sweep_spec_round_trips_through_the_store_without_its_secrets():
    spec = parse_sweep_spec(
        sweep(
            trial={**TRIAL, "secrets": {"KEY": "hidden"}},
            parameters={
                "w": {"type": "quniform", "min": 8, "max": 32, "q": 8},
                "a": {"type": "grid", "values": [1, 2]},
            },
            sampler={"type": "grid", "seed": 3},
            maxTrials=None,
            maxConcurrentTrials=9,
            earlyTermination={"policy": "asha", "minResource": 2},
        )
    )
    assert spec.max_trials == spec.grid_size() == 8 and spec.max_concurrent_trials == 8
    assert spec.parameters[0].enumerated() == (8, 16, 24, 32)
    stored = sweep_spec_to_stored(spec)
    assert "hidden" not in repr(stored)
    assert sweep_spec_from_stored(stored, {"KEY": "hidden"}) == spec


def test_job_params_are_stored_and_older_specs_have_none():
    spec = parse_job_spec({"name": "j", **TRIAL, "params": {"lr": 0.1, "opt": "sgd", "on": True}})
    assert decode_job_spec(encode_job_spec(spec)).params == {"lr": 0.1, "opt": "sgd", "on": True}
    older = {key: value for key, value in encode_job_spec(spec).items() if key != "params"}
    assert decode_job_spec({**older, "v": 1}).params == {}
    with pytest.raises(SpecError, match="params.lr"):
        parse_job_spec({"name": "j", **TRIAL, "params": {"lr": [1]}})


def test_a_rebuilt_study_goes_on_with_the_same_trials():
    spec = parse_sweep_spec(sweep(sampler={"type": "random", "seed": 1}))
    study = SweepStudy(spec, [], seed=1)
    asked = [study.ask() for _ in range(2)]
    for step in range(3):
        study.report(0, step, 5.0 - step)
    study.tell(0, "completed", 3.0)
    stored = [
        StoredTrial(0, asked[0][1], "completed", 3.0, study.intermediate(0), study.system_attrs(0)),
        StoredTrial(1, asked[1][1], "running", None, {}, study.system_attrs(1)),
    ]
    rebuilt = SweepStudy(spec, stored, seed=1)
    assert [t.number for t in rebuilt.study.trials] == [0, 1]
    assert rebuilt.study.best_trial.params == asked[0][1]
    rebuilt.report(1, 0, 1.0)  # the running trial goes on reporting
    assert rebuilt.intermediate(1) == {0: 1.0}
    number, params = rebuilt.ask()
    assert number == 2 and params not in (asked[0][1], asked[1][1])  # not the first trials' draws again


def test_bandit_prunes_a_trial_outside_the_slack_of_the_best():
    study = optuna.create_study(pruner=BanditPruner(slack_factor=0.1, slack_amount=0.0, delay=0, interval=1))
    best = study.ask()
    best.report(1.0, 0)
    close, far = study.ask(), study.ask()
    close.report(1.05, 0)
    far.report(1.2, 0)
    assert not close.should_prune() and far.should_prune()


def test_runs_sort_and_read_arguments():
    assert argument_params("--lr 0.1 --width=64 --fast -n -3 data.csv") == {
        "lr": "0.1",
        "width": "64",
        "fast": "true",
        "n": "-3",
    }
    runs = [
        {"name": "a", "metrics": {"loss": {"final": 2.0, "min": 1.0}}},
        {"name": "b", "metrics": {}},
        {"name": "c", "metrics": {"loss": {"final": 1.5, "min": 1.5}}},
    ]
    assert [r["name"] for r in sorted_runs(runs, "loss", False)] == ["c", "a", "b"]
    assert [r["name"] for r in sorted_runs(runs, "loss.min", False)] == ["a", "c", "b"]
    with pytest.raises(BatchAIError, match="no run logged a metric 'acc'"):
        sorted_runs(runs, "acc", False)
