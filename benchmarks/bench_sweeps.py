"""Sweep overhead per trial, and how soon a pruned trial is stopped.

1. Per-trial overhead: N plain jobs submitted one after another (each as soon as the previous ended) against a
   sweep of N trials with maxConcurrentTrials 1, the same script (3 metric records, 0.3 s) on a 1-node local
   cluster. Side by side: submit→running of each job (startTime − creation, from the run history), and the gap
   from one job's end to the next job's creation (for plain jobs: the client seeing the end and submitting;
   for the sweep: its loop seeing the trial end and submitting the next).
2. Pruning decision latency: a median-stopping sweep whose trials log one record every 0.5 s; for each pruned
   trial, the time from its metric record being written on the node (the record's own time) to the sweep
   deciding to prune (prunedAt), and on to the trial's job having ended (endTime).

    python benchmarks/bench_sweeps.py [--trials 8] [--prune-trials 8]     # reduced: --trials 4 --prune-trials 6
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from _common import Service, ms, print_rows, summary, write_result

TRIAL = """
import time
from batchai_jupyter.runtime import log_metric, params
x = params().get("x", 1.0)
for step in range({steps}):
    log_metric("loss", (x - 3) ** 2 + 10.0 / (step + 1), step)
    time.sleep({pause})
"""


def trial_command(directory: str, steps: int, pause: float) -> str:
    path = os.path.join(directory, f"trial-{steps}-{pause}.py")
    with open(path, "w") as handle:
        handle.write(TRIAL.format(steps=steps, pause=pause))
    return f"{sys.executable} {path}"


def runs_of(service: Service, prefix: str) -> list[dict]:
    runs = [r for r in service.client.runs("default", "default") if r["name"].startswith(prefix)]
    return sorted(runs, key=lambda r: r["created"])


def gaps(runs: list[dict]) -> list[float]:
    return [later["created"] - earlier["endTime"] for earlier, later in zip(runs, runs[1:], strict=False)]


def plain_jobs(service: Service, command: str, count: int) -> list[dict]:
    for index in range(count):
        name = f"plain-{index}"
        service.client.create_job(
            "default", "default", {"cluster": "one", "customToolkitSettings": {"commandLine": command}}, name
        )
        service.client.wait_for_job("default", "default", name, poll=0.05)
    return runs_of(service, "plain-")


def sweep(service: Service, name: str, command: str, trials: int, concurrent: int, policy: dict | None) -> dict:
    spec = {
        "name": name,
        "cluster": "one" if concurrent == 1 else "two",
        "trial": {"customToolkitSettings": {"commandLine": command}},
        "parameters": {"x": {"type": "uniform", "min": 0, "max": 10}},
        "sampler": {"type": "random", "seed": 4},
        "primaryMetric": "loss",
        "maxTrials": trials,
        "maxConcurrentTrials": concurrent,
    }
    if policy:
        spec["earlyTermination"] = policy
    service.client.create_sweep("default", "default", spec)
    return service.client.wait_for_sweep("default", "default", name, timeout=600, poll=0.2)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8, help="plain jobs and sweep trials in part 1")
    parser.add_argument("--prune-trials", type=int, default=8, help="trials of the median-stopping sweep")
    parser.add_argument("--json", help="where to write the result (default benchmarks/results/sweeps.json)")
    args = parser.parse_args()
    scripts = tempfile.mkdtemp(prefix="bench-sweeps-")
    with Service() as service:
        service.make_cluster("one", 1)
        service.make_cluster("two", 2)
        quick = trial_command(scripts, 3, 0.1)
        plain = plain_jobs(service, quick, args.trials)
        sweep(service, "over", quick, args.trials, 1, None)
        trials = runs_of(service, "over-")
        started = time.time()
        sweep(
            service,
            "prune",
            trial_command(scripts, 12, 0.5),
            args.prune_trials,
            2,
            {"policy": "median", "startupTrials": 2, "delayEvaluation": 1},
        )
        prune_seconds = time.time() - started
        pruned = [t for t in service.client.sweep_trials("default", "default", "prune") if t["state"] == "pruned"]
        ended = {r["name"]: r["endTime"] for r in runs_of(service, "prune-")}
    decide = [t["prunedAt"] - t["prunedMetricTime"] for t in pruned if t["prunedMetricTime"]]
    stop = [ended[t["job"]] - t["prunedAt"] for t in pruned]
    result = {
        "trials": args.trials,
        "plain submit→running": summary([r["startTime"] - r["created"] for r in plain]),
        "trial submit→running": summary([r["startTime"] - r["created"] for r in trials]),
        "plain end→next submit": summary(gaps(plain)),
        "trial end→next submit": summary(gaps(trials)),
        "pruned": len(pruned),
        "prune sweep seconds": prune_seconds,
        "pruning decision (metric written→decided)": summary(decide) if decide else None,
        "pruned trial stopped (decided→job ended)": summary(stop) if stop else None,
    }
    rows = []
    for label, ours, theirs in (
        ("submit→running median", "trial submit→running", "plain submit→running"),
        ("end→next submit median", "trial end→next submit", "plain end→next submit"),
    ):
        ratio = result[ours]["median"] / result[theirs]["median"]
        rows.append((label, ms(result[ours]["median"]), ms(result[theirs]["median"]), f"{ratio:6.2f}x"))
    print_rows(
        f"Sweep overhead per trial, N={args.trials} (1-node cluster, one at a time)",
        rows,
        header=("measure", "sweep trial", "plain job", "trial/plain"),
    )
    latency_rows = [
        (label, ms(result[key]["median"]), ms(result[key]["max"]), str(result[key]["n"]))
        for label, key in (
            ("metric written → prune decided", "pruning decision (metric written→decided)"),
            ("prune decided → trial's job ended", "pruned trial stopped (decided→job ended)"),
        )
        if result[key]
    ]
    print_rows(
        f"Pruning (median stopping, {args.prune_trials} trials, 2 at once): {len(pruned)} pruned",
        latency_rows,
        header=("measure", "median", "max", "n"),
    )
    print(f"  written to {write_result('sweeps', result, args.json)}")
    return result


if __name__ == "__main__":
    main()
