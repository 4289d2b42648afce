"""A JobMonitor on a 2-node job: requests it makes to the service, and line printed → in the widget.

Two monitors watch the same job at the same time, each in its own process: "before" runs the
package of an earlier revision (--before DIR or BATCHAI_BENCH_BEFORE: a checkout whose
batchai_jupyter polls job, tasks and every log file each step, e.g. `git worktree add DIR 970ec42`),
"after" runs this checkout's (the job
snapshot, driven by the event stream). Every HTTP request a monitor's process sends is counted (a
long-lived event stream counts once). The job first waits queued behind a job holding both nodes
(`--queued` seconds), then both ranks print a line with their time.time() every 0.3 s; a line's
latency is (seen in the monitor's model − printed) on the machine's one clock. The ranks start
printing once both monitors show both of them.

    python benchmarks/bench_widgets.py [--lines 60] [--queued 10]      # reduced: --lines 20 --queued 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

from _common import REPO_ROOT, Service, ms, print_rows, summary, write_result

TARGET_FEWER = 5.0
TARGET_P90_SECONDS = 0.500
TICKS = """
import os, time
rank = int(os.environ["RANK"])
while not os.path.exists({start!r}):
    time.sleep(0.05)
for i in range({lines}):
    print(f"tick {{i}} {{time.time():.6f}}", flush=True)
    time.sleep(0.3)
"""
HOLD = "while [ ! -f {gate} ]; do sleep 0.05; done"


# -- one monitor, in its own process ---------------------------------------------------------------


def watch(url: str, token: str, job_name: str, timeout: float) -> None:
    """Runs a JobMonitor on the job; prints 'ready', then one JSON line of what it measured."""
    import requests

    sent: list[float] = []
    original = requests.Session.send

    def counting(session, request, **kwargs):
        sent.append(time.time())
        return original(session, request, **kwargs)

    requests.Session.send = counting
    from batchai_jupyter.client import Client
    from batchai_jupyter.notebook.jobhandle import Job
    from batchai_jupyter.notebook.widgets import JobMonitor

    delays: list[float] = []
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def observer(task: str):
        def on_value(change) -> None:
            now = time.time()
            complete = [line for line in change["new"].split("\n")[:-1] if line.startswith("tick ")]
            with lock:
                for line in complete[seen.get(task, 0) :]:
                    delays.append(now - float(line.split()[2]))
                seen[task] = len(complete)

        return on_value

    monitor = JobMonitor(Job(Client(url, token), "default", "default", job_name))
    deadline = time.monotonic() + timeout
    observed: set[str] = set()
    print("ready" if monitor.poller.running else "not running", flush=True)
    while len(observed) < 2 and time.monotonic() < deadline:
        for task in set(monitor.task_logs) - observed:
            monitor.task_logs[task].stdout.observe(observer(task), names="value")
            observed.add(task)
        time.sleep(0.005)
    print("observing", flush=True)  # the ranks wait for this before they print
    while monitor.poller.running and time.monotonic() < deadline:
        time.sleep(0.05)
    finished = time.time()
    monitor.close()
    print(json.dumps({"requests": sent, "delays": delays, "finished": finished, "state": monitor.state}), flush=True)


# -- the run: one job, two monitors ------------------------------------------------------------------


def _watcher(side: str, package: str, service: Service, job: str, timeout: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package, os.path.join(REPO_ROOT, "benchmarks")])}
    return subprocess.Popen(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--watch",
            service.url,
            service.token,
            job,
            "--timeout",
            str(timeout),
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def rate(stamps: list[float], start: float, end: float) -> float:
    return sum(start <= t < end for t in stamps) / (end - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=60, help="lines each rank prints, one per 0.3 s")
    parser.add_argument("--queued", type=float, default=10.0, help="seconds the job waits queued")
    parser.add_argument(
        "--before",
        default=os.environ.get("BATCHAI_BENCH_BEFORE"),
        required=not os.environ.get("BATCHAI_BENCH_BEFORE"),
        help="the directory holding the earlier revision's batchai_jupyter",
    )
    parser.add_argument("--json", help="write the result here (default benchmarks/results/widgets.json)")
    parser.add_argument("--watch", nargs=3, metavar=("URL", "TOKEN", "JOB"), help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=300.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.watch:
        watch(*args.watch, args.timeout)
        return {}

    sides = {"before": os.path.abspath(args.before), "after": REPO_ROOT}
    with Service() as service:
        service.make_cluster("mon", 2)
        hold, start = os.path.join(service.base, "hold"), os.path.join(service.base, "start")
        script = os.path.join(service.base, "ticks.py")
        with open(script, "w") as handle:
            handle.write(TICKS.format(start=start, lines=args.lines))
        client = service.client
        client.create_job(
            "default",
            "default",
            {"cluster": "mon", "nodeCount": 2, "customToolkitSettings": {"commandLine": HOLD.format(gate=hold)}},
            "hold",
        )
        client.create_job(
            "default",
            "default",
            {"cluster": "mon", "nodeCount": 2, "pyTorchSettings": {"pythonScriptFilePath": script, "processCount": 2}},
            "ticks",
        )
        timeout = args.queued + args.lines * 0.3 + 120
        watchers = {side: _watcher(side, package, service, "ticks", timeout) for side, package in sides.items()}
        for side, process in watchers.items():
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the {side} monitor did not start")
        queued_from = time.time()
        time.sleep(args.queued)
        queued_to = time.time()
        open(hold, "w").close()
        client.wait_for_job("default", "default", "hold", timeout=60)
        for side, process in watchers.items():
            if process.stdout.readline().strip() != "observing":
                raise RuntimeError(f"the {side} monitor did not see both ranks")
        open(start, "w").close()
        client.wait_for_job("default", "default", "ticks", timeout=timeout)
        results = {}
        for side, process in watchers.items():
            output, _ = process.communicate(timeout=timeout)
            results[side] = json.loads(output.strip().splitlines()[-1])
        printed = sorted(
            float(line.split()[2])
            for line in client.read_job_file("default", "default", "ticks", "stdout-0.txt").decode().splitlines()
            if line.startswith("tick ")
        )
    running_from, running_to = printed[0], printed[-1]
    table: dict[str, dict] = {}
    for side, result in results.items():
        if len(result["delays"]) != 2 * args.lines:
            raise RuntimeError(f"the {side} monitor saw {len(result['delays'])} of {2 * args.lines} lines")
        table[side] = {
            "queued_rps": rate(result["requests"], queued_from, queued_to),
            "running_rps": rate(result["requests"], running_from, running_to),
            "requests": len(result["requests"]),
            "latency": summary(result["delays"]),
        }
    before, after = table["before"], table["after"]
    fewer = {
        phase: before[f"{phase}_rps"] / after[f"{phase}_rps"] if after[f"{phase}_rps"] else float("inf")
        for phase in ("queued", "running")
    }
    total_fewer = before["requests"] / after["requests"]

    def times(ratio: float) -> str:
        return f"{ratio:6.1f}x fewer" if ratio != float("inf") else "  none after"

    rows = [
        (
            "requests/s while queued",
            f"{after['queued_rps']:8.2f}",
            f"{before['queued_rps']:8.2f}",
            times(fewer["queued"]),
        ),
        (
            "requests/s while printing",
            f"{after['running_rps']:8.2f}",
            f"{before['running_rps']:8.2f}",
            times(fewer["running"]),
        ),
        ("requests, whole job", str(after["requests"]), str(before["requests"]), times(total_fewer)),
    ]
    for stat in ("median", "p90"):
        rows.append(
            (
                f"line printed → widget, {stat}",
                ms(after["latency"][stat]),
                ms(before["latency"][stat]),
                f"{after['latency'][stat] / before['latency'][stat]:6.2f}x",
            )
        )
    met = {
        "fewer": min(fewer["running"], total_fewer) >= TARGET_FEWER,
        "p90": after["latency"]["p90"] <= TARGET_P90_SECONDS,
    }
    result = {
        "lines": args.lines,
        "queued_seconds": args.queued,
        "before_package": sides["before"],
        "sides": table,
        "fewer": {**fewer, "whole_job": total_fewer},
        "met": met,
    }
    print_rows(
        f"JobMonitor on a 2-node job ({args.lines} lines per rank, {args.queued:g} s queued)",
        rows,
        ("measure", "after (snapshot + events)", f"before ({sides['before']})", "after vs before"),
    )
    print(
        f"  target ≥ {TARGET_FEWER:g}x fewer requests: {'met' if met['fewer'] else 'MISSED'}; "
        f"target p90 ≤ {TARGET_P90_SECONDS * 1000:.0f} ms: {'met' if met['p90'] else 'MISSED'}"
    )
    print(f"  written to {write_result('widgets', result, args.json)}")
    return result


if __name__ == "__main__":
    main()
