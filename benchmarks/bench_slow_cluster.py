"""Does a slow cluster hold up the others? Submit→running and terminate→ended of a job on a healthy
cluster, with and without another cluster busy in a slow operation, side by side in one run.

The slow operation is a mount command that sleeps (`--slow-seconds`, 30 by default), either a job's
`unmanagedFileSystems` mount (`--blocker job-mount`: it runs when that job starts on its node) or a
cluster's (`--blocker cluster-mount`: it runs while the cluster's node is provisioned), each on a
1-node cluster of its own.

Each sample, on the 1-node cluster `fast`: a job running `sleep 600` is terminated (POST terminate →
its `terminating` and `failed` events), then another is PUT (→ its `running` event); in a slow sample
the blocker is started after the first job runs, so both measures fall while its mount sleeps.
Slow and quiet samples take turns by rounds: a round's slow samples share one blocker, its quiet
ones follow once that blocker's cluster is deleted, so both see the machine's load of the same minutes.

    python benchmarks/bench_slow_cluster.py [-n 3] [--per-round 3] [--slow-seconds 30] \
        [--blocker job-mount|cluster-mount]

To measure the code before a change, serve another checkout of the package with
BATCHAI_BENCH_PACKAGE=DIR (see _common.Service).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

from _common import EventStream, Service, ms, print_rows, summary, write_result

TARGET_RATIO = 1.2
# Starting a blocker (a cluster, a node, a mount process) is a burst of work on this machine; what is
# measured is the wait for a cluster that sleeps, so samples begin once that burst is over.
BLOCKER_SETTLE_SECONDS = 1.0
MEASURES = ("submit→running", "terminate→terminating", "terminate→ended")


def _mount(seconds: float) -> dict:
    # The mount path is appended to the command line; mkdir makes the command succeed with it.
    return {"unmanagedFileSystems": [{"mountCommand": f"sleep {seconds:g}; mkdir -p", "relativeMountPath": "slow"}]}


def _start_blocker(service: Service, kind: str, index: int, seconds: float) -> tuple[str, Callable[[], bool]]:
    """Starts a slow operation on a cluster of its own once it is under way; returns the cluster's
    name and a check that says whether the operation is over."""
    cluster = f"slow-{kind}-{index}"

    def counts() -> dict:
        return service.client.get(service.client.cluster_path("default", cluster))["nodeStateCounts"]

    if kind == "cluster-mount":
        service.client.create_cluster(
            "default", {"backend": "local", "nodeCount": 1, "nodeSetup": {"mountVolumes": _mount(seconds)}}, cluster
        )
        _wait(lambda: counts()["preparingNodeCount"] == 1, f"cluster {cluster} to start preparing its node")
        return cluster, lambda: counts()["idleNodeCount"] == 1
    service.make_cluster(cluster, 1)
    name = f"blocker-{index}"
    service.client.create_job(
        "default",
        "default",
        {"cluster": cluster, "mountVolumes": _mount(seconds), "customToolkitSettings": {"commandLine": "true"}},
        name,
    )
    # The store says running as soon as the job has its node; its mount command runs right after.
    _wait(lambda: service.job(name)["executionState"] == "running", f"job {name} to take its node")
    return cluster, lambda: service.job(name)["executionState"] in ("succeeded", "failed")


def _wait(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def _submit(service: Service, stream: EventStream, name: str) -> float:
    t0 = time.time()
    service.client.create_job(
        "default", "default", {"cluster": "fast", "customToolkitSettings": {"commandLine": "sleep 600"}}, name
    )
    running = stream.wait_for(lambda e: e.get("name") == name and e.get("state") == "running", timeout=300)
    return running["received"] - t0


def _terminate(service: Service, stream: EventStream, name: str) -> tuple[float, float]:
    t0 = time.time()
    service.client.request("POST", service.client.job_path("default", "default", name) + "/terminate")
    terminating = stream.wait_for(lambda e: e.get("name") == name and e.get("state") == "terminating", timeout=300)
    ended = stream.wait_for(lambda e: e.get("name") == name and e.get("state") in ("failed", "succeeded"), timeout=300)
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


def _slow_round(
    service: Service,
    stream: EventStream,
    samples: dict[str, list[float]],
    kind: str,
    r: int,
    per_round: int,
    seconds: float,
) -> tuple[str, Callable[[], bool]]:
    """One blocker, and `per_round` samples while it sleeps; returns its cluster and its end check."""
    blocked: list[tuple[str, Callable[[], bool]]] = []
    for k in range(per_round):
        start = (lambda: blocked.append(_start_blocker(service, kind, r, seconds))) if k == 0 else None
        for measure_name, value in _sample(service, stream, f"slow-{r}-{k}", start).items():
            samples[measure_name].append(value)
    cluster, over = blocked[0]
    if over():
        print(f"  note: round {r}'s samples outlasted the blocker's {seconds:g} s; use fewer per round")
    return cluster, over


def _cluster_gone(service: Service, cluster: str) -> bool:
    return cluster not in {c["name"] for c in service.client.clusters("default")}


def measure(rounds: int, per_round: int, seconds: float, kind: str) -> dict[str, dict[str, list[float]]]:
    """Rounds of `per_round` slow samples (within one blocker's sleep) then as many quiet ones (after
    that blocker's cluster is gone), so both kinds see the machine's load of the same minutes."""
    samples: dict[str, dict[str, list[float]]] = {mode: {m: [] for m in MEASURES} for mode in ("quiet", "slow")}
    with Service() as service:
        service.make_cluster("fast", 1)
        stream = EventStream(service, type="job")
        try:
            _sample(service, stream, "warmup")
            for r in range(rounds):
                cluster, over = _slow_round(service, stream, samples["slow"], kind, r, per_round, seconds)
                _wait(over, f"the slow operation on {cluster} to end", timeout=seconds + 120)
                service.client.request("DELETE", service.client.cluster_path("default", cluster))
                _wait(partial(_cluster_gone, service, cluster), f"cluster {cluster} to be deleted")
                for k in range(per_round):
                    for measure_name, value in _sample(service, stream, f"quiet-{r}-{k}").items():
                        samples["quiet"][measure_name].append(value)
        finally:
            stream.close()
    return samples


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=3, help="samples of each kind per round")
    parser.add_argument("--slow-seconds", type=float, default=30.0)
    parser.add_argument("--blocker", choices=("job-mount", "cluster-mount"), default="job-mount")
    parser.add_argument("--json", help="write the result here (default benchmarks/results/slow_cluster.json)")
    args = parser.parse_args(argv)

    samples = measure(args.rounds, args.per_round, args.slow_seconds, args.blocker)
    stats = {mode: {k: summary(v) for k, v in measures.items()} for mode, measures in samples.items()}
    rows, ratios = [], {}
    for measure_name in MEASURES:
        for stat in ("median", "p90"):
            slow, quiet = stats["slow"][measure_name][stat], stats["quiet"][measure_name][stat]
            ratios[f"{measure_name} {stat}"] = slow / quiet
            rows.append((f"{measure_name} {stat}", ms(slow), ms(quiet), f"{slow / quiet:7.2f}x"))
    met = all(ratios[f"{m} median"] <= TARGET_RATIO for m in MEASURES)
    result = {
        "rounds": args.rounds,
        "per_round": args.per_round,
        "slow_seconds": args.slow_seconds,
        "blocker": args.blocker,
        "stats": stats,
        "samples": samples,
        "ratios": ratios,
        "target_ratio": TARGET_RATIO,
        "met": met,
    }
    header = f"A job on a healthy cluster while another cluster's {args.blocker} sleeps {args.slow_seconds:g} s"
    print_rows(
        f"{header} (N={args.rounds * args.per_round} of each)",
        rows,
        ("measure", "with the slow cluster", "without", "with/without"),
    )
    print(f"  target: median ratios ≤ {TARGET_RATIO}: {'met' if met else 'MISSED'}")
    print(f"  written to {write_result(f'slow_cluster_{args.blocker}', result, args.json)}")
    return result


if __name__ == "__main__":
    main()
