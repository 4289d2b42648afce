"""Latency of one empty job: submit→running and submit→succeeded through the service, against
spawning `python -c pass` directly.

Service side: a 1-node local cluster; each run PUTs a job whose customToolkit command line is
`true` and waits for it to succeed before the next is submitted (jobs one at a time). The clock
starts just before the PUT (client time.time(); server and client share the machine's clock):

  running (event)    arrival of the job's `running` event on the SSE stream
                     (published once the task processes have been started)
  running (server)   the job's executionInfo.startTime (the moment the store says running)
  succeeded (event)  arrival of the job's `succeeded` event on the SSE stream
  succeeded (server) the job's executionInfo.endTime
  submit reply       when the PUT's reply came back

Direct side: subprocess.Popen([python, "-c", "pass"]): running = Popen returned (exec done),
succeeded = wait() returned.

    python benchmarks/bench_latency.py [-n 30] [--warmup 3] [--sandbox auto|off]

`--sandbox off` measures the local node without its bubblewrap sandbox (what each task's sandbox costs).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from _common import EventStream, Service, iso_to_epoch, ms, print_rows, summary, write_result

TARGET_MEDIAN_SUBMIT_TO_RUNNING = 0.150


def measure_service(runs: int, warmup: int, sandbox: str = "auto") -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {
        k: []
        for k in ("submit reply", "running (event)", "running (server)", "succeeded (event)", "succeeded (server)")
    }
    with Service() as service:
        service.make_cluster("lat", 1, backendOptions={"sandbox": sandbox})
        stream = EventStream(service, type="job")
        try:
            for i in range(warmup + runs):
                name = f"lat-{i:03d}"
                t0 = time.time()
                service.client.create_job(
                    "default", "default", {"cluster": "lat", "customToolkitSettings": {"commandLine": "true"}}, name
                )
                replied = time.time()
                running = stream.wait_for_job(name, "running")
                done = stream.wait_for_job(name, "succeeded", "failed")
                if done["state"] != "succeeded":
                    raise RuntimeError(f"job {name} failed: {service.job(name)['executionInfo']}")
                info = service.job(name)["executionInfo"]
                if i < warmup:
                    continue
                samples["submit reply"].append(replied - t0)
                samples["running (event)"].append(running["received"] - t0)
                samples["running (server)"].append(iso_to_epoch(info["startTime"]) - t0)
                samples["succeeded (event)"].append(done["received"] - t0)
                samples["succeeded (server)"].append(iso_to_epoch(info["endTime"]) - t0)
        finally:
            stream.close()
    return samples


def measure_direct(runs: int, warmup: int) -> dict[str, list[float]]:
    """`python -c pass` (the comparison), and `bash -c true` (the job's own command, for reference)."""
    samples: dict[str, list[float]] = {"running": [], "succeeded": [], "bash -c true": []}
    for i in range(warmup + runs):
        t0 = time.time()
        process = subprocess.Popen([sys.executable, "-c", "pass"])
        spawned = time.time()
        process.wait()
        ended = time.time()
        t1 = time.time()
        subprocess.run(["bash", "-c", "true"])
        bash_ended = time.time()
        if i >= warmup:
            samples["running"].append(spawned - t0)
            samples["succeeded"].append(ended - t0)
            samples["bash -c true"].append(bash_ended - t1)
    return samples


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", help="write the result here (default benchmarks/results/latency.json)")
    parser.add_argument("--sandbox", choices=("auto", "off"), default="auto", help="the local nodes' task sandbox")
    args = parser.parse_args(argv)

    direct = {k: summary(v) for k, v in measure_direct(args.runs, args.warmup).items()}
    service = {k: summary(v) for k, v in measure_service(args.runs, args.warmup, args.sandbox).items()}
    pairs = [
        ("submit→running", "running (event)", "running"),
        ("submit→running (startTime)", "running (server)", "running"),
        ("submit→succeeded", "succeeded (event)", "succeeded"),
        ("submit→succeeded (endTime)", "succeeded (server)", "succeeded"),
    ]
    rows, ratios = [], {}
    for label, ours, theirs in pairs:
        for stat in ("median", "p90"):
            ratio = service[ours][stat] / direct[theirs][stat]
            ratios[f"{label} {stat}"] = ratio
            rows.append((f"{label} {stat}", ms(service[ours][stat]), ms(direct[theirs][stat]), f"{ratio:7.1f}x"))
    rows.append(("submit reply (PUT) median", ms(service["submit reply"]["median"]), "", ""))
    rows.append(("reference: `bash -c true` median", "", ms(direct["bash -c true"]["median"]), ""))
    headline = service["running (event)"]["median"]
    result = {
        "runs": args.runs,
        "warmup": args.warmup,
        "service": service,
        "direct": direct,
        "ratios": ratios,
        "headline": {
            "measure": "median submit→running (SSE event)",
            "value_s": headline,
            "target_s": TARGET_MEDIAN_SUBMIT_TO_RUNNING,
            "met": headline <= TARGET_MEDIAN_SUBMIT_TO_RUNNING,
            "ratio": ratios["submit→running median"],
        },
    }
    result["summary"] = [
        {
            "measure": "empty job: median submit→running",
            "service": f"{headline * 1000:.1f} ms",
            "direct": f"{direct['running']['median'] * 1000:.1f} ms (Popen)",
            "ratio": ratios["submit→running median"],
            "target": f"≤ {TARGET_MEDIAN_SUBMIT_TO_RUNNING * 1000:.0f} ms",
            "met": result["headline"]["met"],
        },
        {
            "measure": "empty job: median submit→succeeded",
            "service": f"{service['succeeded (event)']['median'] * 1000:.1f} ms",
            "direct": f"{direct['succeeded']['median'] * 1000:.1f} ms (python -c pass)",
            "ratio": ratios["submit→succeeded median"],
            "target": "",
            "met": None,
        },
    ]
    print_rows(f"Empty-job latency, N={args.runs} (direct = subprocess `python -c pass`)", rows)
    print(
        f"  target: median submit→running ≤ {TARGET_MEDIAN_SUBMIT_TO_RUNNING * 1000:.0f} ms: "
        f"{'met' if result['headline']['met'] else 'MISSED'} ({headline * 1000:.1f} ms)"
    )
    print(f"  written to {write_result('latency', result, args.json)}")
    return result


if __name__ == "__main__":
    main()
