"""Does a slow cluster hold up the others? Submit→running and terminate→ended of a job on a healthy
cluster, with and without another cluster busy in a slow operation, side by side in one run.

The slow operation is a mount command that sleeps (`--slow-seconds`, 30 by default), either a job's
`unmanagedFileSystems` mount (`--blocker job-mount`: it runs when that job starts on its node) or a
cluster's (`--blocker cluster-mount`: it runs while the cluster's node is provisioned). Each slow
sample gets a blocker of its own, on a 1-node cluster of its own, and is taken while that blocker's
mount command is still sleeping; the quiet samples are taken first, with nothing else on the service.

Each sample, on the 1-node cluster `fast`: a job running `sleep 600` is terminated (POST terminate →
its `terminating` and `failed` events), then another is PUT (→ its `running` event); in a slow sample
the blocker is started after the first job runs, so both measures fall while its mount sleeps.

    python benchmarks/bench_slow_cluster.py [-n 5] [--slow-seconds 30] [--blocker job-mount|cluster-mount]

To measure the code before a change, serve another checkout of the package with
BATCHAI_BENCH_PACKAGE=DIR (see _common.Service).
"""
from __future__ import annotations

import argparse
import time

from _common import EventStream, Service, ms, print_rows, summary, write_result

TARGET_RATIO = 1.2
TASK_SETTLE_SECONDS = 0.5
# Starting a blocker (a cluster, a node, a mount process) is a burst of work on this machine; what is
# measured is the wait for a cluster that sleeps, so samples begin once that burst is over.
BLOCKER_SETTLE_SECONDS = 1.0
MEASURES = ("submit→running", "terminate→terminating", "terminate→ended")


def _mount(seconds: float) -> dict:
    # The mount path is appended to the command line; mkdir makes the command succeed with it.
    return {"unmanagedFileSystems": [{"mountCommand": f"sleep {seconds:g}; mkdir -p", "relativeMountPath": "slow"}]}


def _start_blocker(service: Service, kind: str, index: int, seconds: float) -> None:
    """Starts a slow operation on a cluster of its own and returns once it is under way."""
    cluster = f"slow-{kind}-{index}"
    if kind == "cluster-mount":
        service.client.create_cluster("default", {"backend": "local", "nodeCount": 1,
                                                  "nodeSetup": {"mountVolumes": _mount(seconds)}}, cluster)
        _wait(lambda: service.client.get(service.client.cluster_path("default", cluster))["nodeStateCounts"]
              ["preparingNodeCount"] == 1, f"cluster {cluster} to start preparing its node")
        return
    service.make_cluster(cluster, 1)
    name = f"blocker-{index}"
    service.client.create_job("default", "default", {"cluster": cluster, "mountVolumes": _mount(seconds),
                                                     "customToolkitSettings": {"commandLine": "true"}}, name)
    # The store says running as soon as the job has its node; its mount command runs right after.
    _wait(lambda: service.job(name)["executionState"] == "running", f"job {name} to take its node")


def _wait(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def _submit(service: Service, stream: EventStream, name: str) -> float:
    t0 = time.time()
    service.client.create_job("default", "default",
                              {"cluster": "fast", "customToolkitSettings": {"commandLine": "sleep 600"}}, name)
    running = stream.wait_for(lambda e: e.get("name") == name and e.get("state") == "running", timeout=300)
    # The task's wrapper records its pid a few ms after `running`; a terminate before that finds
    # nothing to signal and waits out the grace period, which is not what is measured here.
    time.sleep(TASK_SETTLE_SECONDS)
    return running["received"] - t0


def _terminate(service: Service, stream: EventStream, name: str) -> tuple[float, float]:
    t0 = time.time()
    service.client.request("POST", service.client.job_path("default", "default", name) + "/terminate")
    terminating = stream.wait_for(lambda e: e.get("name") == name and e.get("state") == "terminating", timeout=300)
    ended = stream.wait_for(lambda e: e.get("name") == name and e.get("state") in ("failed", "succeeded"),
                            timeout=300)
    return terminating["received"] - t0, ended["received"] - t0


def _sample(service: Service, stream: EventStream, name: str, blocker=None) -> dict[str, float]:
    """A job running on `fast` is terminated, then another is submitted; `blocker` (when given)
    starts the slow operation in between, so both happen while it is under way."""
    _submit(service, stream, f"{name}-a")
    if blocker is not None:
        blocker()
        time.sleep(BLOCKER_SETTLE_SECONDS)
    terminating, ended = _terminate(service, stream, f"{name}-a")
    running = _submit(service, stream, f"{name}-b")
    _terminate(service, stream, f"{name}-b")
    return {"submit→running": running, "terminate→terminating": terminating, "terminate→ended": ended}


def measure(runs: int, seconds: float, kind: str) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {mode: {m: [] for m in MEASURES} for mode in ("quiet", "slow")}
    with Service() as service:
        service.make_cluster("fast", 1)
        stream = EventStream(service, type="job")
        try:
            _sample(service, stream, "warmup")
            for i in range(runs):
                for measure_name, value in _sample(service, stream, f"quiet-{i}").items():
                    samples["quiet"][measure_name].append(value)
            for i in range(runs):
                started = time.monotonic()
                blocker = lambda i=i: _start_blocker(service, kind, i, seconds)  # noqa: E731
                for measure_name, value in _sample(service, stream, f"slow-{i}", blocker).items():
                    samples["slow"][measure_name].append(value)
                if time.monotonic() - started > seconds:
                    print(f"  note: slow sample {i} outlasted its blocker's {seconds:g} s")
        finally:
            stream.close()
    return samples


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--runs", type=int, default=5)
    parser.add_argument("--slow-seconds", type=float, default=30.0)
    parser.add_argument("--blocker", choices=("job-mount", "cluster-mount"), default="job-mount")
    parser.add_argument("--json", help="write the result here (default benchmarks/results/slow_cluster.json)")
    args = parser.parse_args(argv)

    samples = measure(args.runs, args.slow_seconds, args.blocker)
    stats = {mode: {k: summary(v) for k, v in measures.items()} for mode, measures in samples.items()}
    rows, ratios = [], {}
    for measure_name in MEASURES:
        for stat in ("median", "p90"):
            slow, quiet = stats["slow"][measure_name][stat], stats["quiet"][measure_name][stat]
            ratios[f"{measure_name} {stat}"] = slow / quiet
            rows.append((f"{measure_name} {stat}", ms(slow), ms(quiet), f"{slow / quiet:7.2f}x"))
    met = all(ratios[f"{m} median"] <= TARGET_RATIO for m in MEASURES)
    result = {"runs": args.runs, "slow_seconds": args.slow_seconds, "blocker": args.blocker, "stats": stats,
              "samples": samples, "ratios": ratios, "target_ratio": TARGET_RATIO, "met": met}
    header = f"A job on a healthy cluster while another cluster's {args.blocker} sleeps {args.slow_seconds:g} s"
    print_rows(f"{header} (N={args.runs})", rows, ("measure", "with the slow cluster", "without", "with/without"))
    print(f"  target: median ratios ≤ {TARGET_RATIO}: {'met' if met else 'MISSED'}")
    print(f"  written to {write_result(f'slow_cluster_{args.blocker}', result, args.json)}")
    return result


if __name__ == "__main__":
    main()
