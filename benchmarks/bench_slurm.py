"""Slurm: 100 trivial jobs through our service onto Slurm, against the same 100 submitted with raw
`sbatch --wrap true`, on one private Slurm (slurmctld + two slurmd, the tests' slurm.conf).

Raw side: `sbatch --parsable --nodes=1 --wrap true` N times as fast as sbatch answers, then
`squeue` every 0.2 s until none of them is pending or running. Elapsed = first sbatch to the poll
that saw them all done.

Service side: N customToolkit `true` jobs PUT to a Slurm cluster as fast as the service answers,
then the job list every 0.2 s until all have ended. Elapsed = first PUT to the poll that saw them
all done. Each job is one Slurm job running our driver, one srun step and the task wrapper.

Latency: single jobs one after another, submit → seen finished, both sides (same 0.2 s polling).

    python benchmarks/bench_slurm.py [-n 100] [--single 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _common import REPO_ROOT, Service, print_rows, summary, write_result

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "slurm"))
from slurm_daemons import SlurmDaemons  # noqa: E402  (the tests' private Slurm)

POLL_SECONDS = 0.2
TARGET_RATIO = 0.9


def active_slurm_jobs(slurm: SlurmDaemons, ids: set[str]) -> set[str]:
    out = subprocess.run(
        ["squeue", "-h", "--states=PENDING,CONFIGURING,RUNNING,COMPLETING", "-o", "%i"],
        env=slurm.env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return ids & {line.strip() for line in out.splitlines()}


def raw_sbatch(slurm: SlurmDaemons, jobs: int) -> float:
    start = time.time()
    ids = set()
    for _ in range(jobs):
        out = subprocess.run(
            ["sbatch", "--parsable", "--nodes=1", "--output=/dev/null", "--wrap", "true"],
            env=slurm.env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        ids.add(out.strip().split(";")[0])
    while active_slurm_jobs(slurm, ids):
        time.sleep(POLL_SECONDS)
    return time.time() - start


def through_service(service: Service, cluster: str, jobs: int, prefix: str) -> float:
    client = service.client
    names = [f"{prefix}-{i:04d}" for i in range(jobs)]
    start = time.time()
    for name in names:
        client.create_job(
            "default", "default", {"cluster": cluster, "customToolkitSettings": {"commandLine": "true"}}, name
        )
    pending = set(names)
    while pending:
        time.sleep(POLL_SECONDS)
        for job in client.list("workspaces/default/experiments/default/jobs"):
            if job["name"] in pending and job["executionState"] in ("succeeded", "failed"):
                if job["executionState"] == "failed":
                    raise SystemExit(f"job {job['name']} failed: {job['executionInfo']}")
                pending.discard(job["name"])
    return time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--jobs", type=int, default=100)
    parser.add_argument("--single", type=int, default=10, help="single-job latency samples per side")
    args = parser.parse_args()
    slurm = SlurmDaemons(tempfile.mkdtemp(prefix="bench-slurm-"))
    slurm.start()
    try:
        with Service(extra_env={"SLURM_CONF": slurm.conf}) as service:
            service.client.create_cluster(
                "default", {"backend": "slurm", "backendOptions": {"partition": "debug"}}, "hpc"
            )
            through_service(service, "hpc", 2, "warm")  # ships the runtime, warms caches
            raw_sbatch(slurm, 2)
            raw = raw_sbatch(slurm, args.jobs)
            ours = through_service(service, "hpc", args.jobs, "tp")
            raw_single = [raw_sbatch(slurm, 1) for _ in range(args.single)]
            ours_single = [through_service(service, "hpc", 1, f"one{i}") for i in range(args.single)]
    finally:
        slurm.stop()
    raw_rate, our_rate = args.jobs / raw, args.jobs / ours
    ratio = our_rate / raw_rate
    added = (ours - raw) / args.jobs
    single_raw, single_ours = summary(raw_single), summary(ours_single)
    print_rows(
        f"{args.jobs} trivial jobs on a 2-node Slurm (target throughput ratio >= {TARGET_RATIO})",
        [
            ("elapsed", f"{ours:.1f} s", f"{raw:.1f} s (raw sbatch)", f"{ours / raw:.3f}x"),
            ("throughput", f"{our_rate:.2f} jobs/s", f"{raw_rate:.2f} jobs/s", f"{ratio:.3f}"),
            ("added per job (elapsed)", f"{added * 1000:.0f} ms", "", ""),
            (
                "single job, median",
                f"{single_ours['median']:.2f} s",
                f"{single_raw['median']:.2f} s",
                f"{single_ours['median'] / single_raw['median']:.2f}x",
            ),
        ],
    )
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(
        f"\nthroughput ratio {ratio:.3f} (target >= {TARGET_RATIO}: {verdict}); "
        f"added latency per single job {single_ours['median'] - single_raw['median']:+.2f} s (median)"
    )
    path = write_result(
        "slurm",
        {
            "jobs": args.jobs,
            "raw_seconds": raw,
            "service_seconds": ours,
            "throughput_ratio": ratio,
            "added_seconds_per_job": added,
            "single_raw": single_raw,
            "single_service": single_ours,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
