"""Throughput: 500 trivial jobs (customToolkit `true`) through a 2-node local cluster, against
running the same 500 `bash -c true` directly, two at a time.

Service side: all jobs are PUT one after another from one client as fast as the service answers
(the engine starts them while later ones are still being submitted), then we wait for every job's
terminal event on the SSE stream. Elapsed = first submit (client clock, just before the first PUT)
to the latest executionInfo.endTime (server clock; same machine). jobs/s = jobs / elapsed.

Direct side: two threads take `bash -c true` runs off one counter, each waiting for its process
before starting the next (two at a time, as the two nodes do). Elapsed = first start to last exit.

    python benchmarks/bench_throughput.py [-n 500] [--nodes 2]
"""

from __future__ import annotations

import argparse
import itertools
import os
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
        "load_average_1min": os.getloadavg()[0],
    }


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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--jobs", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--json", help="write the result here (default benchmarks/results/throughput.json)")
    args = parser.parse_args(argv)

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
