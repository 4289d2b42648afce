"""The notebook experience, measured against the CLI doing the same thing.

1. Cell run → job running. An IPython shell with the extension runs `%%batchai_job` (package the
   cell, upload what is not there yet, submit); the clock starts just before run_cell and stops when
   the job's `running` event arrives on the SSE stream. The alternative submits the same job (same
   package input, same preparation and command) with `batchai job create -f job.json`, clock started
   just before the CLI process is spawned.
2. A line printed on a node → visible in the JobMonitor's model. The job prints a line with its
   time.time() every 0.3 s; the monitor's stdout Textarea is observed and each line's delay is
   (observed - printed) on the machine's one clock. The alternative, on the same job at the same
   time, is `batchai job file stream` (a subprocess whose stdout lines are timed as they arrive).

    python benchmarks/bench_notebook.py [-n 15] [--lines 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

from _common import EventStream, Service, ms, print_rows, summary, write_result

TARGET_MEDIAN_LINE_TO_MONITOR = 0.500


def _shell(service: Service):
    from IPython.core.interactiveshell import InteractiveShell

    from batchai_jupyter.notebook.magics import BatchAIMagics

    os.environ.update(BATCHAI_URL=service.url, BATCHAI_TOKEN=service.token)
    shell = InteractiveShell.instance()
    shell.register_magics(BatchAIMagics(shell))
    return shell


def _cli(*args: str, service: Service, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "BATCHAI_URL": service.url, "BATCHAI_TOKEN": service.token}
    return subprocess.Popen([sys.executable, "-m", "batchai_jupyter.cli", *args], env=env, **kwargs)


def measure_submit(service: Service, shell, runs: int, warmup: int, workdir: str) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"cell": [], "cli": []}
    stream = EventStream(service, type="job")
    job_json = os.path.join(workdir, "job.json")
    try:
        for i in range(warmup + runs):
            name = f"cell-{i:03d}"
            t0 = time.time()
            result = shell.run_cell(f"%%batchai_job --cluster lat --name {name}\npass\n")
            if result.error_in_exec or result.error_before_exec:
                raise RuntimeError(f"the cell failed: {result.error_in_exec or result.error_before_exec}")
            running = stream.wait_for_job(name, "running")
            stream.wait_for_job(name, "succeeded", "failed")
            if i == 0:  # the CLI submits exactly what the magic submitted
                spec = service.job(name)["properties"]
                with open(job_json, "w") as handle:
                    json.dump(
                        {
                            key: spec[key]
                            for key in (
                                "nodeCount",
                                "inputDirectories",
                                "outputDirectories",
                                "jobPreparation",
                                "customToolkitSettings",
                            )
                        },
                        handle,
                    )
            cli_name = f"cli-{i:03d}"
            t1 = time.time()
            process = _cli(
                "job", "create", "-f", job_json, "-n", cli_name, "-c", "lat", service=service, stdout=subprocess.DEVNULL
            )
            cli_running = stream.wait_for_job(cli_name, "running")
            process.wait()
            stream.wait_for_job(cli_name, "succeeded", "failed")
            if i >= warmup:
                samples["cell"].append(running["received"] - t0)
                samples["cli"].append(cli_running["received"] - t1)
    finally:
        stream.close()
    return samples


TICKS = """%%batchai_job --cluster lat --name ticks
import time
for i in range({lines}):
    print(f"tick {{i}} {{time.time():.6f}}", flush=True)
    time.sleep(0.3)
"""


def measure_lines(service: Service, shell, lines: int) -> dict[str, list[float]]:
    from batchai_jupyter.notebook.widgets import JobMonitor

    job = shell.run_cell(TICKS.format(lines=lines)).result
    monitor = JobMonitor(job)
    delays: dict[str, list[float]] = {"monitor": [], "cli": []}
    seen = {"monitor": 0}

    def on_value(change) -> None:
        now = time.time()
        complete = change["new"].split("\n")[:-1]
        for line in complete[seen["monitor"] :]:
            delays["monitor"].append(now - float(line.split()[2]))
        seen["monitor"] = len(complete)

    deadline = time.monotonic() + 120
    while "master" not in monitor.task_logs:
        if time.monotonic() > deadline:
            raise RuntimeError("the job's task never appeared in the monitor")
        time.sleep(0.01)
    monitor.task_logs["master"].stdout.observe(on_value, names="value")
    cli = _cli(
        "job",
        "file",
        "stream",
        "-n",
        "ticks",
        "-f",
        "stdout.txt",
        service=service,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )

    def read_cli() -> None:
        for line in cli.stdout:
            if line.startswith("tick "):
                delays["cli"].append(time.time() - float(line.split()[2]))

    reader = threading.Thread(target=read_cli)
    reader.start()
    job.wait(timeout=300)
    reader.join(60)
    deadline = time.monotonic() + 30
    while monitor.poller.running and time.monotonic() < deadline:
        time.sleep(0.05)
    monitor.close()
    # Lines printed before a side started watching measure its start-up, not its latency.
    first = next(i for i, line in enumerate(monitor.log_text("master").splitlines()) if line) + 2
    return {side: values[first:] for side, values in delays.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--lines", type=int, default=30)
    parser.add_argument("--json", help="write the result here (default benchmarks/results/notebook.json)")
    args = parser.parse_args(argv)

    with Service() as service:
        service.make_cluster("lat", 1)
        workdir = os.path.join(service.base, "notebook")
        os.makedirs(workdir)
        previous = os.getcwd()
        os.chdir(workdir)  # the notebook's folder
        try:
            shell = _shell(service)
            submit = {k: summary(v) for k, v in measure_submit(service, shell, args.runs, args.warmup, workdir).items()}
            lines = {k: summary(v) for k, v in measure_lines(service, shell, args.lines).items()}
        finally:
            os.chdir(previous)
    rows, ratios = [], {}
    for label, table, ours, theirs in (
        ("cell run→running", submit, "cell", "cli"),
        ("node print→visible", lines, "monitor", "cli"),
    ):
        for stat in ("median", "p90"):
            ratio = table[ours][stat] / table[theirs][stat]
            ratios[f"{label} {stat}"] = ratio
            rows.append((f"{label} {stat}", ms(table[ours][stat]), ms(table[theirs][stat]), f"{ratio:6.2f}x"))
    headline = lines["monitor"]["median"]
    result = {
        "runs": args.runs,
        "warmup": args.warmup,
        "lines": args.lines,
        "submit": submit,
        "print_to_visible": lines,
        "ratios": ratios,
        "headline": {
            "measure": "median line printed on a node → in the JobMonitor's model",
            "value_s": headline,
            "target_s": TARGET_MEDIAN_LINE_TO_MONITOR,
            "met": headline <= TARGET_MEDIAN_LINE_TO_MONITOR,
        },
        "summary": [
            {
                "measure": "cell run → job running, median",
                "service": f"{submit['cell']['median'] * 1000:.1f} ms",
                "direct": f"{submit['cli']['median'] * 1000:.1f} ms (batchai job create -f)",
                "ratio": ratios["cell run→running median"],
                "target": "",
                "met": None,
            },
            {
                "measure": "node print → JobMonitor, median",
                "service": f"{headline * 1000:.1f} ms",
                "direct": f"{lines['cli']['median'] * 1000:.1f} ms (batchai job file stream)",
                "ratio": ratios["node print→visible median"],
                "target": f"≤ {TARGET_MEDIAN_LINE_TO_MONITOR * 1000:.0f} ms",
                "met": headline <= TARGET_MEDIAN_LINE_TO_MONITOR,
            },
        ],
    }
    print_rows(f"Notebook vs CLI, N={args.runs} submissions, {args.lines} lines", rows)
    print(
        f"  target: median node print → JobMonitor ≤ {TARGET_MEDIAN_LINE_TO_MONITOR * 1000:.0f} ms: "
        f"{'met' if result['headline']['met'] else 'MISSED'} ({headline * 1000:.1f} ms)"
    )
    print(f"  written to {write_result('notebook', result, args.json)}")
    return result


if __name__ == "__main__":
    main()
