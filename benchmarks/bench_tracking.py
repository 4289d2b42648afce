"""How soon a metric a job logs with `log_metric` reaches TensorBoard's event files and MLflow, side by side
with the JobMonitor's own path (the job snapshot's metrics tail) in the same run.

One job on a 1-node local cluster logs `--points` values of `loss`, one every `--every` seconds; three
threads poll, each as fast as its reader allows: the job snapshot (`since=` the metrics file's offset),
TensorBoard's EventAccumulator over the job's `stdouterr/tensorboard`, and MLflow's metric history of the
job's run in a SQLite store. A point's latency is when a poller first saw it minus the time log_metric
recorded in it (one machine, one clock).

    python benchmarks/bench_tracking.py [--points 40] [--every 0.1]     (~20 s)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable

from _common import Service, ms, print_rows, summary, write_result

EXPERIMENT = "bench-tracking"
JOB = "curve"


def poll(seen: dict[int, float], read: Callable[[], list[int]], points: int, stop: threading.Event) -> None:
    while len(seen) < points and not stop.is_set():
        try:
            steps = read()
        except Exception:  # noqa: BLE001 - not there yet (no run, no event file): poll again
            steps = []
        now = time.time()
        for step in steps:
            seen.setdefault(step, now)
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=40)
    parser.add_argument("--every", type=float, default=0.1)
    parser.add_argument("--json", help="write the result here (default benchmarks/results/tracking.json)")
    args = parser.parse_args(argv)

    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    service = Service()
    mlflow_uri = f"sqlite:///{os.path.join(service.base, 'mlflow.db')}"
    service.extra_env["MLFLOW_TRACKING_URI"] = mlflow_uri
    mlflow = MlflowClient(tracking_uri=mlflow_uri)
    mlflow.create_experiment(EXPERIMENT, os.path.join(service.base, "artifacts"))
    script = (
        "import time\nfrom batchai_jupyter.runtime import log_metric\n"
        f"for step in range({args.points}):\n"
        f"    log_metric('loss', 1 / (step + 1), step)\n    time.sleep({args.every})\n"
    )
    with service:
        client = service.client
        service.make_cluster("bench", 1)
        client.create_experiment("default", EXPERIMENT)
        command = f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"
        spec = {"cluster": "bench", "customToolkitSettings": {"commandLine": command}}
        client.create_job("default", EXPERIMENT, spec, JOB)
        logged: dict[int, float] = {}
        offset = [0]

        def snapshot() -> list[int]:
            metrics = client.job_snapshot("default", EXPERIMENT, JOB, since={"metrics.jsonl": offset[0]})["metrics"]
            if not metrics:
                return []
            offset[0] = metrics["nextOffset"]
            records = [json.loads(line) for line in metrics["text"].splitlines() if line]
            logged.update({r["step"]: r["time"] for r in records})
            return [r["step"] for r in records]

        def tensorboard() -> list[int]:
            found = glob.glob(os.path.join(service.home, "datastores", "*", "default", EXPERIMENT, JOB, "*"))
            accumulator = EventAccumulator(os.path.join(found[0], "stdouterr", "tensorboard"))
            accumulator.Reload()
            return [event.step for event in accumulator.Tensors("loss")]

        def mlflow_history() -> list[int]:
            experiment = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
            [run] = mlflow.search_runs([experiment], max_results=1)
            return [metric.step for metric in mlflow.get_metric_history(run.info.run_id, "loss")]

        readers = {
            "job snapshot (JobMonitor)": snapshot,
            "TensorBoard event files": tensorboard,
            "MLflow": mlflow_history,
        }
        seen: dict[str, dict[int, float]] = {name: {} for name in readers}
        stop = threading.Event()
        threads = [
            threading.Thread(target=poll, args=(seen[name], read, args.points, stop), daemon=True)
            for name, read in readers.items()
        ]
        for thread in threads:
            thread.start()
        client.wait_for_job("default", EXPERIMENT, JOB, timeout=args.points * args.every + 120)
        for thread in threads:
            thread.join(60)
        stop.set()

    # The first half pays each reader's start (MLflow's import and store, TensorBoard's first event file):
    # the second half is the steady state.
    steady = {step for step in logged if step >= args.points // 2}
    latencies = {
        name: summary([at - logged[step] for step, at in steps.items() if step in steady])
        for name, steps in seen.items()
    }
    first = {name: steps[0] - logged[0] for name, steps in seen.items() if 0 in steps and 0 in logged}
    base = latencies["job snapshot (JobMonitor)"]
    rows = [
        (f"{name} {stat}", ms(values[stat]), ms(base[stat]), f"{values[stat] / base[stat]:6.2f}x")
        for name, values in latencies.items()
        for stat in ("median", "p90")
        if values["n"]
    ]
    print_rows(
        f"log_metric → seen, the last {len(steady)} of {args.points} points logged every {args.every}s",
        rows,
        ("measure", "latency", "job snapshot", "ratio"),
    )
    for name, seconds in first.items():
        print(f"  first point → {name}: {ms(seconds)}")
    result = {"points": args.points, "every_s": args.every, "latency_s": latencies, "first_point_s": first}
    print("results:", write_result("tracking", result, args.json))
    return result


if __name__ == "__main__":
    main()
