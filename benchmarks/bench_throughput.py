"""Throughput: 500 trivial jobs (customToolkit `true`) through a 2-node local cluster, against
running the same 500 `bash -c true` directly, two at a time.

Service side: all jobs are PUT one after another from one client as fast as the service answers
(the engine starts them while later ones are still being submitted), then we wait for every job's
terminal event on the SSE stream. Elapsed = first submit (client clock, just before the first PUT)
to the latest executionInfo.endTime (server clock; same machine). jobs/s = jobs / elapsed.

Direct side: two threads take `bash -c true` runs off one counter, each waiting for its process
before starting the next (two at a time, as the two nodes do). Elapsed = first start to last exit.

    python benchmarks/bench_throughput.py [-n 500] [--nodes 2]
    python benchmarks/bench_throughput.py -n 300 --before DIR --pairs 3   # interleaved before/after pairs
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import subprocess
import threading
import time

from _common import EventStream, Service, iso_to_epoch, print_rows, write_result

TARGET_JOBS_PER_SECOND = 20.0


def measure_service(jobs: int, nodes: int) -> dict:
    with Service() as service:
        service.make_cluster("tp", nodes)
        stream = EventStream(service, type="job")
        try:
            names = [f"tp-{i:04d}" for i in range(jobs)]
            cpu_before = service.cpu_seconds()
            client_before = _own_cpu_seconds()
            first_submit = time.time()
            for name in names:
                service.client.create_job(
                    "default", "default", {"cluster": "tp", "customToolkitSettings": {"commandLine": "true"}}, name
                )
            submitted = time.time()
            pending = set(names)
            failed = []
            while pending:
                event = stream.wait_for(lambda e: e.get("state") in ("succeeded", "failed"), timeout=300)
                if event.get("name") in pending:
                    pending.discard(event["name"])
                    if event["state"] == "failed":
                        failed.append(event["name"])
            observed = time.time()
            cpu_after = service.cpu_seconds()
            client_after = _own_cpu_seconds()
        finally:
            stream.close()
        listing = service.client.list("workspaces/default/experiments/default/jobs")
    if failed:
        raise RuntimeError(f"{len(failed)} jobs failed, e.g. {failed[:3]}")
    ends = [iso_to_epoch(j["executionInfo"]["endTime"]) for j in listing if j["name"] in set(names)]
    starts = [iso_to_epoch(j["executionInfo"]["startTime"]) for j in listing if j["name"] in set(names)]
    last_end = max(ends)
    elapsed = last_end - first_submit
    return {
        "jobs": jobs,
        "nodes": nodes,
        "elapsed_s": elapsed,
        "jobs_per_s": jobs / elapsed,
        "submit_s": submitted - first_submit,
        "submits_per_s": jobs / (submitted - first_submit),
        "first_start_after_submit_s": min(starts) - first_submit,
        "all_events_seen_s": observed - first_submit,
        "service_cpu_ms_per_job": 1000 * (cpu_after["service"] - cpu_before["service"]) / jobs,
        "launcher_cpu_ms_per_job": 1000 * (cpu_after["children"] - cpu_before["children"]) / jobs,
        # this process: the PUTs and the event stream's reader
        "client_cpu_ms_per_job": 1000 * (client_after - client_before) / jobs,
        "load_average_1min": os.getloadavg()[0],
    }


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_direct(jobs: int, parallel: int) -> dict:
    counter = itertools.count()
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                index = next(counter)
            if index >= jobs:
                return
            subprocess.run(["bash", "-c", "true"], check=True)

    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    start = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.time() - start
    return {"jobs": jobs, "parallel": parallel, "elapsed_s": elapsed, "jobs_per_s": jobs / elapsed}


def compare(before: str, pairs: int, jobs: int, nodes: int, json_path: str | None) -> dict:
    """Before and after taking turns: on a machine shared with other work, jobs/s of runs minutes apart
    differ more than the change does; a pair's two runs see the same load, and CPU per job moves least."""
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for pair in range(1, pairs + 1):
        for side in ("before", "after"):
            if side == "before":
                os.environ["BATCHAI_BENCH_PACKAGE"] = os.path.abspath(before)
            else:
                os.environ.pop("BATCHAI_BENCH_PACKAGE", None)
            load = os.getloadavg()[0]
            run = {**measure_service(jobs, nodes), "load_average_at_start": load}
            runs[side].append(run)
            print(
                f"  pair {pair} {side:6}  load {load:5.2f}  {run['jobs_per_s']:6.1f} jobs/s  CPU ms per job: "
                f"service {run['service_cpu_ms_per_job']:.2f}, node side {run['launcher_cpu_ms_per_job']:.2f}, "
                f"client {run['client_cpu_ms_per_job']:.2f}",
                flush=True,
            )
    os.environ.pop("BATCHAI_BENCH_PACKAGE", None)
    keys = ("jobs_per_s", "service_cpu_ms_per_job", "launcher_cpu_ms_per_job", "client_cpu_ms_per_job")
    means = {side: {key: statistics.mean(r[key] for r in done) for key in keys} for side, done in runs.items()}
    print_rows(
        f"{jobs} `true` jobs on {nodes} nodes, {pairs} interleaved pairs, means",
        [
            (key, f"{means['before'][key]:.2f}", f"{means['after'][key]:.2f}", f"{means['after'][key] / b:.3f}x")
            for key in keys
            for b in (means["before"][key] or 1.0,)
        ],
        header=("measure", "before", "after", "after/before"),
    )
    result = {"jobs": jobs, "nodes": nodes, "before_package": before, "runs": runs, "means": means}
    print(f"  written to {write_result('throughput_pairs', result, json_path)}")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--jobs", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--json", help="write the result here (default benchmarks/results/throughput.json)")
    parser.add_argument(
        "--before",
        metavar="DIR",
        help="instead: interleaved pairs, the batchai_jupyter package in DIR (e.g. from `git archive REV "
        "batchai_jupyter | tar -x -C DIR`) then this one, each pair under the same load",
    )
    parser.add_argument("--pairs", type=int, default=3, help="with --before: how many pairs")
    args = parser.parse_args(argv)
    if args.before:
        return compare(args.before, args.pairs, args.jobs, args.nodes, args.json)

    direct = measure_direct(args.jobs, args.nodes)
    service = measure_service(args.jobs, args.nodes)
    ratio = service["jobs_per_s"] / direct["jobs_per_s"]
    result = {
        "service": service,
        "direct": direct,
        "ratios": {"jobs_per_s service/direct": ratio},
        "headline": {
            "measure": f"jobs/s, {args.jobs} jobs on {args.nodes} nodes",
            "value": service["jobs_per_s"],
            "target": TARGET_JOBS_PER_SECOND,
            "met": service["jobs_per_s"] >= TARGET_JOBS_PER_SECOND,
            "ratio": ratio,
        },
    }
    result["summary"] = [
        {
            "measure": f"{args.jobs} `true` jobs on {args.nodes} nodes: jobs/s",
            "service": f"{service['jobs_per_s']:.1f}/s",
            "direct": f"{direct['jobs_per_s']:.1f}/s (bash -c true x{args.nodes})",
            "ratio": ratio,
            "target": f"≥ {TARGET_JOBS_PER_SECOND:.0f}/s",
            "met": result["headline"]["met"],
        },
    ]
    print_rows(
        f"Throughput, {args.jobs} `true` jobs, {args.nodes} nodes (direct = `bash -c true`, {args.nodes} at a time)",
        [
            (
                "jobs/s (first submit → last end)",
                f"{service['jobs_per_s']:.1f}",
                f"{direct['jobs_per_s']:.1f}",
                f"{ratio:.3f}x",
            ),
            (
                "elapsed",
                f"{service['elapsed_s']:.2f} s",
                f"{direct['elapsed_s']:.2f} s",
                f"{service['elapsed_s'] / direct['elapsed_s']:.1f}x",
            ),
            ("submitting all (PUTs)", f"{service['submit_s']:.2f} s ({service['submits_per_s']:.0f}/s)", "", ""),
            (
                "CPU ms per job: service / node side / client",
                f"{service['service_cpu_ms_per_job']:.2f} / {service['launcher_cpu_ms_per_job']:.2f} / "
                f"{service['client_cpu_ms_per_job']:.2f}",
                "",
                "",
            ),
        ],
    )
    print(
        f"  target: ≥ {TARGET_JOBS_PER_SECOND:.0f} jobs/s: {'met' if result['headline']['met'] else 'MISSED'} "
        f"({service['jobs_per_s']:.1f} jobs/s)"
    )
    print(f"  written to {write_result('throughput', result, args.json)}")
    return result


if __name__ == "__main__":
    main()
