"""A cheap sweep objective and what the sweep tests check of a finished sweep: how many trials were active at
once, which was best, and whether a pruned trial was worse than the median when it was pruned."""

from __future__ import annotations

import statistics
import sys
import textwrap

# loss at step t = (x - 3)^2 + 10 / (t + 1): every curve falls, and x decides which is lower at every step.
TRIAL_SCRIPT = """
import os, sys, time
from batchai_jupyter.runtime import log_metric, params
with open(sys.argv[1], "a") as runs:
    runs.write(os.environ["AZ_BATCHAI_JOB_NAME"] + "\\n")
x = params()["x"]
for step in range({steps}):
    log_metric("loss", (x - 3) ** 2 + 10.0 / (step + 1), step)
    time.sleep({pause})
"""


def loss(x: float, step: int) -> float:
    return (x - 3) ** 2 + 10.0 / (step + 1)


def write_trial(directory, steps: int = 8, pause: float = 0.35) -> tuple[str, str]:
    """(the trial's command line, the file each trial appends its job name to when it starts)."""
    script = directory / "trial.py"
    script.write_text(textwrap.dedent(TRIAL_SCRIPT.format(steps=steps, pause=pause)))
    runs = directory / "trial-runs.txt"
    return f"{sys.executable} {script} {runs}", str(runs)


def sweep_spec(name: str, cluster: str, command: str, **fields) -> dict:
    return {
        "name": name,
        "cluster": cluster,
        "trial": {"customToolkitSettings": {"commandLine": command}},
        "parameters": {"x": {"type": "uniform", "min": 0, "max": 10}},
        "primaryMetric": "loss",
        "goal": "minimize",
        "maxTrials": 8,
        "maxConcurrentTrials": 2,
        **fields,
    }


def most_active_at_once(runs: list[dict]) -> int:
    """The most trial jobs that existed unended at one moment (a job counts from its creation to its end)."""
    return max(sum(1 for other in runs if other["created"] <= run["created"] < other["endTime"]) for run in runs)


def curve(client, experiment: str, job: str) -> dict[int, float]:
    points = client.run_metrics("default", experiment, job, ["loss"])["metrics"]["loss"]
    return {step: value for step, value in points}


def median_at(curves: list[dict[int, float]], step: int) -> float:
    return statistics.median(c[step] for c in curves if step in c)
