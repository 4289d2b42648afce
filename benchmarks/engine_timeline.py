"""Where a burst of trivial jobs spends its wall time in the service: bench_throughput's run (N `true` jobs
on a 2-node local cluster) with `batchai serve` under engine_probes.py, then, per node, the time from one job's
start to the next's on the same node (with 2 nodes, jobs/s is about 2 / that), split into the task's side (the
job started → its end begins: the task, the launcher's report, the wait for the cluster's worker) and the
service's (its end begins → the next job started); the cluster worker's cycles (those that ended and started
nothing were woken for nothing) and its CPU per job in each step.

    python benchmarks/engine_timeline.py [-n 300]       # BATCHAI_BENCH_PACKAGE=DIR: another package's service
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile

import _common
import bench_throughput


def measure(jobs: int) -> tuple[dict, list[list]]:
    out = tempfile.mktemp(prefix="batchai-probes-", suffix=".jsonl")
    os.environ["BATCHAI_PROBES_OUT"] = out
    wrap = [sys.executable, os.path.join(_common.BENCH_DIR, "engine_probes.py"), "--"]
    original = _common.Service.__init__

    def probed(self: _common.Service, *args: object, **named: object) -> None:
        original(self, *args, wrap=wrap, **named)  # type: ignore[misc]

    bench_throughput.Service = type("ProbedService", (_common.Service,), {"__init__": probed})
    try:
        result = bench_throughput.measure_service(jobs, 2)
    finally:
        bench_throughput.Service = _common.Service
    with open(out) as handle:
        records = [json.loads(line) for line in handle]
    os.unlink(out)
    return result, records


def timeline(records: list[list]) -> dict:
    starts = {r[4]: r for r in records if r[0] == "JobRunner.start"}
    ends = {r[4]: r for r in records if r[0] == "JobRunner.end"}
    cycles = sorted((r[2], r[3], r[5]) for r in records if r[0] == "Engine.cluster_cycle")
    by_start = sorted(starts.values(), key=lambda r: r[2])
    by_end = sorted(ends.values(), key=lambda r: r[2])
    node_cycle, task_side, service_side, kinds = [], [], [], collections.Counter()
    for begin, finish, _cpu in cycles:
        ended = [r for r in by_end if begin <= r[2] <= finish]
        started = [r for r in by_start if begin <= r[2] <= finish]
        kinds[f"{len(ended)} ended, {len(started)} started"] += 1
        if len(ended) == 1 and len(started) == 1 and ended[0][4] in starts:
            first, end, second = starts[ended[0][4]], ended[0], started[0]
            node_cycle.append(second[2] - first[2])
            task_side.append(end[2] - first[3])
            service_side.append(second[3] - end[2])
    cpu = collections.defaultdict(float)
    for record in records:
        if record[1].startswith("batchai-cluster"):
            cpu[record[0]] += record[5]
    jobs = max(len(starts), 1)
    return {
        "node_cycle_ms": _spread(node_cycle),
        "task_side_ms": _spread(task_side),
        "service_side_ms": _spread(service_side),
        "worker_cycles": dict(kinds),
        "worker_cpu_ms_per_job": {what: round(total / jobs, 3) for what, total in sorted(cpu.items())},
    }


def _spread(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "median": round(1000 * statistics.median(ordered), 2),
        "p90": round(1000 * ordered[int(0.9 * (len(ordered) - 1))], 2),
        "count": len(ordered),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--jobs", type=int, default=300)
    args = parser.parse_args(argv)
    result, records = measure(args.jobs)
    found = {"run": result, **timeline(records)}
    print(json.dumps(found, indent=1))
    print(f"  written to {_common.write_result('engine_timeline', found, None)}")
    return found


if __name__ == "__main__":
    main()
