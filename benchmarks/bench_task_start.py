"""The node's own share of a job: a task through the local launcher alone, no service. For each of N `true`
tasks one after another: its task directory written to the launcher → the launcher reports its wrapper
reaped (the launcher's fork, the wrapper's files before and after the task, the task's start, bwrap where
`--sandbox`, `bash -c true`), and the CPU all of it took (the launcher and everything it reaped).

    python benchmarks/bench_task_start.py [-n 200] [--sandbox]
    python benchmarks/bench_task_start.py --before DIR --pairs 3 --sandbox   # interleaved before/after pairs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from _common import print_rows

# One run, in a fresh interpreter that imports the package found first on its path; prints its figures as JSON.
RUN = r"""
import json, os, resource, shutil, statistics, subprocess, sys, tempfile, time
from batchai_jupyter.runtime import wrapper
from batchai_jupyter.backends import local_sandbox
tasks, sandbox = int(sys.argv[1]), sys.argv[2] == "1"
home = os.path.expanduser("~")
root = tempfile.mkdtemp(prefix="batchai-task-start-", dir=home)  # under the home that the sandbox hides
launcher = subprocess.Popen(wrapper.launch_argv(sys.executable, "--launcher"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, start_new_session=True, close_fds=True)
times = []
for index in range(tasks):
    task_dir = os.path.join(root, f"t{index}")
    os.makedirs(os.path.join(task_dir, "logs"))
    task = {"command": "true", "env": {"PATH": "/usr/bin:/bin"}, "cwd": task_dir, "heartbeat_seconds": 2,
            "stdout": os.path.join(task_dir, "logs", "out.txt"), "stderr": os.path.join(task_dir, "logs", "err.txt")}
    if sandbox:
        task["sandbox"] = local_sandbox.argv([task_dir], [home], task_dir)
    with open(os.path.join(task_dir, "task.json"), "w") as handle:
        json.dump(task, handle)
    start = time.perf_counter()
    launcher.stdin.write(task_dir.encode() + b"\n")
    launcher.stdin.flush()
    launcher.stdout.readline()
    times.append(1000 * (time.perf_counter() - start))
    with open(os.path.join(task_dir, "exit")) as handle:
        assert json.load(handle)["exit_code"] == 0
launcher.stdin.close()
launcher.wait()
used = resource.getrusage(resource.RUSAGE_CHILDREN)
shutil.rmtree(root)
times = sorted(times[5:])  # the first ones warm caches up
print(json.dumps({"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * len(times))],
                  "cpu_ms_per_task": 1000 * (used.ru_utime + used.ru_stime) / tasks}))
"""


def measure(tasks: int, sandbox: bool, package: str | None = None) -> dict:
    env = dict(os.environ)
    path = [os.path.abspath(package)] if package else []
    env["PYTHONPATH"] = os.pathsep.join([*path, *filter(None, [env.get("PYTHONPATH")])])
    load = os.getloadavg()[0]
    out = subprocess.run(
        [sys.executable, "-c", RUN, str(tasks), "1" if sandbox else "0"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {**json.loads(out), "load": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--tasks", type=int, default=200)
    parser.add_argument("--sandbox", action="store_true", help="each task in bwrap, as a local node runs it")
    parser.add_argument("--before", help="the batchai_jupyter package in DIR (from `git archive`) vs this one")
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    sides = [("before", args.before), ("after", None)] if args.before else [("this", None)]
    runs: dict[str, list[dict]] = {side: [] for side, _ in sides}
    for pair in range(1, (args.pairs if args.before else 1) + 1):
        for side, package in sides:
            run = measure(args.tasks, args.sandbox, package)
            runs[side].append(run)
            print(
                f"  {pair} {side:6} load {run['load']:5.2f}  median {run['median_ms']:6.2f} ms  "
                f"p90 {run['p90_ms']:6.2f} ms  CPU {run['cpu_ms_per_task']:5.2f} ms per task"
            )
    if not args.before:
        return
    keys = ("median_ms", "p90_ms", "cpu_ms_per_task")
    means = {side: {key: statistics.mean(run[key] for run in runs[side]) for key in keys} for side in runs}
    print_rows(
        f"{args.tasks} `true` tasks through the launcher{' in bwrap' if args.sandbox else ''}, means",
        [
            (key, f"{means['before'][key]:.2f}", f"{means['after'][key]:.2f}", f"{ratio:.3f}x")
            for key in keys
            for ratio in (means["after"][key] / (means["before"][key] or 1.0),)
        ],
        header=("measure", "before", "after", "after/before"),
    )


if __name__ == "__main__":
    main()
