"""A 2-node PyTorch DDP job (gloo, 2 ranks, ddp_train.py) through the service, against the same
script under two bare `torchrun` agents with c10d rendezvous, started together:

    torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend=c10d \\
             --rdzv-endpoint=127.0.0.1:PORT --rdzv-id=ID ddp_train.py

(The static --master_addr form is avoided on purpose: its agents wait 300 s on exit.)

Service side: a 2-node local cluster, a pyTorch-toolkit job with processCount 2; wall time =
just before the PUT (client clock) → arrival of the job's `succeeded` SSE event.
torchrun side: wall time = just before starting the two agents → both have exited.
For reference, the same script is also run as two plain `python ddp_train.py` processes with
RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT set by hand (no launcher at all).

Repetitions are interleaved (service, torchrun, plain, service, ...); medians are compared.

    python benchmarks/bench_ddp.py [--reps 3] [--steps 300]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import uuid

from _common import BENCH_DIR, EventStream, Service, free_port, print_rows, write_result

SCRIPT = os.path.join(BENCH_DIR, "ddp_train.py")
TARGET_RATIO = 1.10
STEPS_LINE = re.compile(r"steps in ([0-9.]+) s")


def _train_seconds(text: str) -> float | None:
    found = STEPS_LINE.findall(text)
    return max(float(x) for x in found) if found else None


def run_service_once(service: Service, stream: EventStream, name: str, steps: int) -> dict:
    spec = {
        "cluster": "ddp",
        "nodeCount": 2,
        "pyTorchSettings": {
            "pythonScriptFilePath": SCRIPT,
            "commandLineArgs": f"--steps {steps}",
            "processCount": 2,
            "communicationBackend": "gloo",
        },
    }
    t0 = time.time()
    service.client.create_job("default", "default", spec, name)
    done = stream.wait_for(lambda e: e.get("name") == name and e.get("state") in ("succeeded", "failed"), timeout=300)
    wall = done["received"] - t0
    if done["state"] != "succeeded":
        job = service.job(name)
        log = service.client.read_job_file("default", "default", name, "stderr-0.txt").decode(errors="replace")
        raise RuntimeError(f"DDP job {name} failed: {job['executionInfo']}\n{log[-3000:]}")
    out = "".join(
        service.client.read_job_file("default", "default", name, f"stdout-{r}.txt").decode() for r in range(2)
    )
    return {"wall_s": wall, "train_s": _train_seconds(out)}


def run_torchrun_once(steps: int) -> dict:
    port, run_id = free_port(), uuid.uuid4().hex[:8]
    command = [
        "torchrun",
        "--nnodes",
        "2",
        "--nproc-per-node",
        "1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{port}",
        f"--rdzv-id={run_id}",
        SCRIPT,
        "--steps",
        str(steps),
    ]
    return _run_together("torchrun", [(command, dict(os.environ))] * 2)


def run_plain_once(steps: int) -> dict:
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2"}
    command = [sys.executable, SCRIPT, "--steps", str(steps)]
    return _run_together("plain rank", [(command, {**env, "RANK": str(rank)}) for rank in range(2)])


def _run_together(what: str, launches: list[tuple[list[str], dict]]) -> dict:
    """Starts every (command, env) at once and times them until all have exited."""
    t0 = time.time()
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for command, env in launches
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    wall = time.time() - t0
    for process, (_out, err) in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{err[-3000:]}")
    return {"wall_s": wall, "train_s": _train_seconds("".join(out for out, _ in outputs))}


def _stats(runs: list[dict]) -> dict:
    walls = [r["wall_s"] for r in runs]
    trains = [r["train_s"] for r in runs if r["train_s"] is not None]
    return {
        "runs": runs,
        "median_wall_s": statistics.median(walls),
        "min_wall_s": min(walls),
        "max_wall_s": max(walls),
        "median_train_s": statistics.median(trains) if trains else None,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--no-plain", action="store_true", help="skip the launcher-less reference")
    parser.add_argument("--json", help="write the result here (default benchmarks/results/ddp.json)")
    args = parser.parse_args(argv)

    runs: dict[str, list[dict]] = {"service": [], "torchrun": [], "plain": []}
    with Service() as service:
        service.make_cluster("ddp", 2)
        stream = EventStream(service, type="job")
        try:
            for rep in range(args.reps):
                runs["service"].append(run_service_once(service, stream, f"ddp-{rep}", args.steps))
                runs["torchrun"].append(run_torchrun_once(args.steps))
                if not args.no_plain:
                    runs["plain"].append(run_plain_once(args.steps))
        finally:
            stream.close()
    stats = {k: _stats(v) for k, v in runs.items() if v}
    ratio = stats["service"]["median_wall_s"] / stats["torchrun"]["median_wall_s"]
    result = {
        "reps": args.reps,
        "steps": args.steps,
        **stats,
        "ratios": {"wall service/torchrun": ratio},
        "headline": {
            "measure": "DDP wall time ratio service/torchrun (median)",
            "value": ratio,
            "target": TARGET_RATIO,
            "met": ratio <= TARGET_RATIO,
            "ratio": ratio,
        },
    }
    result["summary"] = [
        {
            "measure": f"2-node DDP ({args.steps} steps): median wall time",
            "service": f"{stats['service']['median_wall_s']:.2f} s",
            "direct": f"{stats['torchrun']['median_wall_s']:.2f} s (2 torchrun agents)",
            "ratio": ratio,
            "target": f"ratio ≤ {TARGET_RATIO:.2f}",
            "met": result["headline"]["met"],
        },
    ]
    rows = [
        (
            "wall time, median",
            f"{stats['service']['median_wall_s']:.2f} s",
            f"{stats['torchrun']['median_wall_s']:.2f} s",
            f"{ratio:.3f}x",
        ),
        (
            "wall time, min..max",
            f"{stats['service']['min_wall_s']:.2f}..{stats['service']['max_wall_s']:.2f} s",
            f"{stats['torchrun']['min_wall_s']:.2f}..{stats['torchrun']['max_wall_s']:.2f} s",
            "",
        ),
        (
            "training loop (in-script), median",
            f"{stats['service']['median_train_s']:.2f} s",
            f"{stats['torchrun']['median_train_s']:.2f} s",
            "",
        ),
    ]
    if "plain" in stats:
        plain = stats["plain"]["median_wall_s"]
        result["ratios"]["wall service/plain"] = stats["service"]["median_wall_s"] / plain
        rows.append(
            (
                "reference: 2 plain python ranks, median",
                "",
                f"{plain:.2f} s",
                f"{result['ratios']['wall service/plain']:.3f}x (vs plain)",
            )
        )
    print_rows(
        f"PyTorch DDP, 2 nodes x 1 rank, gloo, {args.steps} steps, {args.reps} reps (direct = 2 torchrun agents, c10d)",
        rows,
    )
    print(f"  target: ratio ≤ {TARGET_RATIO:.2f}: {'met' if result['headline']['met'] else 'MISSED'} ({ratio:.3f})")
    print(f"  written to {write_result('ddp', result, args.json)}")
    return result


if __name__ == "__main__":
    main()
