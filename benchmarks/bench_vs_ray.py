"""batchai against Ray Jobs on this machine, the same work through both, interleaved in one run.

Ray runs from its own virtual environment, made by this script the first time (`python -m venv
--ray-venv` and `pip install 'ray[default]'` from the configured index); nothing of it is imported here:
a `ray start --head --block` in its own session, driven through the Ray Jobs REST API of its dashboard
(what `ray job submit` speaks). batchai runs as `batchai serve` on a temporary home (benchmarks/_common).
Both stay up for the whole run, so each side runs beside the other's idle cost.

  start          launch → first answer: `batchai serve` (GET /version) vs `ray start` (GET /api/version)
  empty job      submit → finished of a `true` job, one at a time, the sides taking turns; beside it a
                 bare `python -c pass` spawn+exit and `python -S -c pass`
  trivial jobs   N `true` jobs submitted at once, first submit → last finished (batchai: a 2-node local
                 cluster; Ray: its head node, 2 CPUs; entrypoints take no CPU there)
  sleeping jobs  K `sleep` jobs running at once: time until all run, and the added PSS per running job
                 (PSS of the service's process tree, or Ray's, with the K running minus idle, the jobs'
                 own processes left out: service + node side together)
  finished jobs  with F finished jobs: listing them all, and an empty job's submit → finished again
  restart        batchai only: kill -9 of the service in the middle of N trivial jobs, a new one on the
                 same home; each job's command appends to its own file, so lost and twice-run jobs show

    python benchmarks/bench_vs_ray.py            # full: 10 empty, 200 trivial, 20 sleeping, 2,000 finished
                                                 # through both (Ray's 2,000 take more than an hour)
    python benchmarks/bench_vs_ray.py --quick    # about 2 minutes: 5 trivial and 5 sleeping Ray jobs, 500 finished
                                                 # batchai jobs (Ray runs about 0.2-0.5 jobs/s here)
    python benchmarks/bench_vs_ray.py --no-ray   # batchai's side only

Slurm: `bench_slurm.py` compares the Slurm backend with raw `sbatch` where Slurm runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable

import requests

from _common import EventStream, Service, free_port, print_rows, write_result

RAY_VENV = os.environ.get("BATCHAI_BENCH_RAY_VENV", "/tmp/ray-venv")
TERMINAL_RAY = ("SUCCEEDED", "FAILED", "STOPPED")


# -- Ray, from its own venv ------------------------------------------------------------------------


def ensure_ray(venv: str) -> str:
    """The `ray` command of `venv`, installing Ray there first if it is not."""
    ray = os.path.join(venv, "bin", "ray")
    if not os.path.exists(ray):
        print(f"installing ray[default] into {venv} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "ray[default]"], check=True)
    return ray


class Ray:
    """`ray start --head --block` with a private temp dir and ports; stopped by signalling its session."""

    def __init__(self, venv: str, cpus: int = 2):
        self.ray = ensure_ray(venv)
        self.base = tempfile.mkdtemp(prefix="ray-bench-", dir="/tmp")
        self.dashboard_port = free_port()
        self.cpus = cpus
        self.process: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.dashboard_port}"
        self.session = requests.Session()

    def __enter__(self) -> Ray:
        started = time.monotonic()
        self.process = subprocess.Popen(
            [
                self.ray,
                "start",
                "--head",
                "--block",
                "--num-cpus",
                str(self.cpus),
                "--port",
                str(free_port()),
                "--dashboard-host",
                "127.0.0.1",
                "--dashboard-port",
                str(self.dashboard_port),
                "--include-dashboard",
                "true",
                "--temp-dir",
                self.base,
                "--disable-usage-stats",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.base, "start.log"), "wb"),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.process.returncode} (see {self.base}/start.log)")
            try:
                if self.session.get(f"{self.url}/api/version", timeout=2).ok:
                    self.first_answer_s = time.monotonic() - started
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.02)
        raise RuntimeError("Ray's dashboard did not answer within 180 s")

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # --block: ray stops its processes on SIGTERM
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for pid in _processes_with(self.base):  # what left the session (raylet's workers)
            _signal(pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)

    def submit(self, entrypoint: str) -> str:
        submission = f"bench-{uuid.uuid4().hex[:12]}"
        answer = self.session.post(
            f"{self.url}/api/jobs/", json={"entrypoint": entrypoint, "submission_id": submission}, timeout=60
        )
        answer.raise_for_status()
        return submission

    def status(self, submission: str) -> str:
        return self.session.get(f"{self.url}/api/jobs/{submission}", timeout=60).json()["status"]

    def wait(self, submissions: Iterable[str], states: tuple[str, ...] = TERMINAL_RAY, timeout: float = 3600) -> None:
        pending = set(submissions)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} Ray jobs not {states} after {timeout} s")
            pending = {s for s in pending if self.status(s) not in states}
            if pending:
                time.sleep(0.01)

    def list_all(self) -> int:
        return len(self.session.get(f"{self.url}/api/jobs/", timeout=300).json())

    def stop(self, submission: str) -> None:
        self.session.post(f"{self.url}/api/jobs/{submission}/stop", timeout=60)


# -- processes and memory --------------------------------------------------------------------------


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except (ProcessLookupError, PermissionError):
        pass


def _processes_with(text: str) -> list[int]:
    """Processes whose command line contains `text`."""
    needle = text.encode()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and needle in _read(f"/proc/{p}/cmdline")]


def _tree(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _read(f"/proc/{name}/stat")
            if stat:
                parent = int(stat[stat.rindex(b")") + 2 :].split()[1])
                children.setdefault(parent, []).append(int(name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def pss_kib(pids: Iterable[int], leave_out: bytes) -> int:
    """Sum of the PSS of `pids`, leaving out processes whose command line contains `leave_out` (the jobs)."""
    total = 0
    for pid in pids:
        if leave_out in _read(f"/proc/{pid}/cmdline"):
            continue
        for line in _read(f"/proc/{pid}/smaps_rollup").splitlines():
            if line.startswith(b"Pss:"):
                total += int(line.split()[1])
    return total


# -- the two sides ---------------------------------------------------------------------------------


class Batchai:
    """batchai's side of each measure, on one `batchai serve`."""

    def __init__(self, service: Service):
        self.service = service
        self.client = service.client
        self.stream = EventStream(service, type="job")
        self.count = 0

    def spec(self, cluster: str, command: str) -> dict:
        return {"cluster": cluster, "customToolkitSettings": {"commandLine": command}}

    def submit(self, cluster: str, command: str) -> str:
        self.count += 1
        name = f"j{self.count:06d}"
        self.client.create_job("default", "default", self.spec(cluster, command), name)
        return name

    def wait(self, names: Iterable[str], states: tuple[str, ...] = ("succeeded", "failed")) -> None:
        pending = set(names)
        while pending:
            event = self.stream.wait_for(lambda e: e.get("state") in states, timeout=600)
            pending.discard(event.get("name"))

    def list_all(self) -> int:
        return len(self.client.list("workspaces/default/experiments/default/jobs"))

    def tree(self) -> set[int]:
        assert self.service.process is not None
        return _tree(self.service.process.pid)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def ratio(ours: float, theirs: float | None) -> str:
    return f"{ours / theirs:.3g}x" if theirs else ""


def measure(args: argparse.Namespace) -> dict:
    result: dict = {"settings": vars(args)}
    rows: list[tuple[str, str, str, str]] = []
    ray_cm = Ray(args.ray_venv) if not args.no_ray else None
    ray = None
    try:
        started = time.monotonic()
        with Service() as service:
            serve_first_answer = time.monotonic() - started  # each side starts alone: batchai, then Ray
            _progress(f"batchai serve answered after {serve_first_answer:.2f} s; starting Ray")
            ray = ray_cm.__enter__() if ray_cm else None
            ours = Batchai(service)
            service.make_cluster("two", 2)
            service.make_cluster("many", args.sleeping)
            ray_first = ray.first_answer_s if ray else None
            result["start_s"] = {"batchai": serve_first_answer, "ray": ray_first}
            rows.append(
                (
                    "launch → first answer",
                    f"{serve_first_answer:.2f} s",
                    _s(ray_first),
                    ratio(serve_first_answer, ray_first),
                )
            )

            _progress("empty jobs, the sides taking turns")
            ours.wait([ours.submit("two", "true")])  # the launcher, caches: warm both sides once
            if ray:
                ray.wait([ray.submit("true")])
            empty: dict[str, list[float]] = {"batchai": [], "ray": [], "python -c pass": [], "python -S -c pass": []}
            for _ in range(args.empty):
                empty["batchai"].append(timed(lambda: ours.wait([ours.submit("two", "true")])))
                if ray:
                    empty["ray"].append(timed(lambda: ray.wait([ray.submit("true")])))
                empty["python -c pass"].append(timed(lambda: subprocess.run([sys.executable, "-c", "pass"])))
                empty["python -S -c pass"].append(timed(lambda: subprocess.run([sys.executable, "-S", "-c", "pass"])))
            result["empty_job_ms"] = {side: median_ms(v) for side, v in empty.items() if v}
            e = result["empty_job_ms"]
            rows.append(
                (
                    "empty job submit → finished, median",
                    f"{e['batchai']:.1f} ms",
                    _ms(e.get("ray")),
                    ratio(e["batchai"], e.get("ray")),
                )
            )
            rows.append(
                (
                    "  bare `python -c pass` / `python -S -c pass`",
                    f"{e['python -c pass']:.1f} / {e['python -S -c pass']:.1f} ms",
                    "",
                    f"batchai/bare {e['batchai'] / e['python -c pass']:.2f}x",
                )
            )

            _progress("trivial jobs")

            def run_trivial_ours() -> None:
                ours.wait([ours.submit("two", "true") for _ in range(args.trivial)])

            def run_trivial_ray() -> None:
                assert ray is not None
                ray.wait([ray.submit("true") for _ in range(args.ray_trivial)])

            ours_rate = args.trivial / timed(run_trivial_ours)
            ray_rate = args.ray_trivial / timed(run_trivial_ray) if ray else None
            result["trivial_jobs_per_s"] = {
                "batchai": ours_rate,
                "ray": ray_rate,
                "batchai_jobs": args.trivial,
                "ray_jobs": args.ray_trivial,
            }
            rows.append(
                (
                    f"trivial jobs/s ({args.trivial} batchai, {args.ray_trivial} Ray)",
                    f"{ours_rate:.1f}/s",
                    _rate(ray_rate),
                    ratio(ours_rate, ray_rate),
                )
            )

            _progress("sleeping jobs: time until all run, added PSS per running job")
            marker = f"sleep {args.sleep_seconds}.{os.getpid() % 1000:03d}"
            sleeping: dict = {}
            idle = pss_kib(ours.tree(), marker.encode())
            names: list[str] = []
            sleeping["batchai_all_running_s"] = timed(
                lambda: (
                    names.extend(ours.submit("many", marker) for _ in range(args.sleeping)),
                    ours.wait(names, ("running",)),
                )
            )
            time.sleep(1)  # past the start: what stays while they run
            busy = pss_kib(ours.tree(), marker.encode())
            sleeping["batchai_pss_per_job_kib"] = (busy - idle) / args.sleeping
            sleeping["batchai_idle_pss_kib"] = idle
            for name in names:
                service.client.terminate_job("default", "default", name)
            ours.wait(names)
            if ray:
                assert ray.process is not None
                idle = pss_kib(_tree(ray.process.pid) | set(_processes_with(ray.base)), marker.encode())
                submissions: list[str] = []
                sleeping["ray_all_running_s"] = timed(
                    lambda: (
                        submissions.extend(ray.submit(marker) for _ in range(args.ray_sleeping)),
                        ray.wait(submissions, ("RUNNING", *TERMINAL_RAY)),
                    )
                )
                time.sleep(1)
                busy = pss_kib(_tree(ray.process.pid) | set(_processes_with(ray.base)), marker.encode())
                sleeping["ray_pss_per_job_kib"] = (busy - idle) / args.ray_sleeping
                sleeping["ray_idle_pss_kib"] = idle
                for submission in submissions:
                    ray.stop(submission)
                ray.wait(submissions)
            result["sleeping"] = sleeping
            rows.append(
                (
                    f"{args.sleeping} sleeping jobs ({args.ray_sleeping} on Ray): all running after",
                    f"{sleeping['batchai_all_running_s']:.2f} s",
                    _s(sleeping.get("ray_all_running_s")),
                    ratio(sleeping["batchai_all_running_s"], sleeping.get("ray_all_running_s")),
                )
            )
            rows.append(
                (
                    "  added PSS per running job (service + node side)",
                    _mib(sleeping["batchai_pss_per_job_kib"]),
                    _mib(sleeping.get("ray_pss_per_job_kib")),
                    ratio(sleeping["batchai_pss_per_job_kib"], sleeping.get("ray_pss_per_job_kib")),
                )
            )
            rows.append(
                (
                    "  idle service PSS",
                    _mib(sleeping["batchai_idle_pss_kib"]),
                    _mib(sleeping.get("ray_idle_pss_kib")),
                    ratio(sleeping["batchai_idle_pss_kib"], sleeping.get("ray_idle_pss_kib")),
                )
            )

            _progress("finished jobs")
            top_up = max(0, args.finished - ours.list_all())
            ours.wait([ours.submit("two", "true") for _ in range(top_up)])
            if ray and args.ray_finished > ray.list_all():
                ray.wait([ray.submit("true") for _ in range(args.ray_finished - ray.list_all())])
            finished: dict = {"batchai_jobs": ours.list_all(), "batchai_list_s": timed(ours.list_all)}
            finished["batchai_empty_job_ms"] = median_ms(
                [timed(lambda: ours.wait([ours.submit("two", "true")])) for _ in range(3)]
            )
            if ray:
                finished["ray_jobs"] = ray.list_all()
                finished["ray_list_s"] = timed(ray.list_all)
                finished["ray_empty_job_ms"] = median_ms(
                    [timed(lambda: ray.wait([ray.submit("true")])) for _ in range(min(3, args.empty))]
                )
            result["finished"] = finished
            rows.append(
                (
                    f"list all jobs ({finished['batchai_jobs']} batchai, {finished.get('ray_jobs', 0)} Ray)",
                    _ms(finished["batchai_list_s"] * 1000),
                    _ms(finished.get("ray_list_s", 0) * 1000 or None),
                    # only for as many jobs on both sides: otherwise the ratio says nothing
                    ratio(finished["batchai_list_s"], finished.get("ray_list_s"))
                    if finished["batchai_jobs"] == finished.get("ray_jobs")
                    else "",
                )
            )
            rows.append(
                (
                    "  then an empty job submit → finished",
                    _ms(finished["batchai_empty_job_ms"]),
                    _ms(finished.get("ray_empty_job_ms")),
                    ratio(finished["batchai_empty_job_ms"], finished.get("ray_empty_job_ms")),
                )
            )
            ours.stream.close()
    finally:
        if ray_cm:
            ray_cm.__exit__(None, None, None)
    _progress("kill -9 of the service mid jobs")
    result["restart"] = measure_restart(args.trivial)
    r = result["restart"]
    rows.append(
        (
            f"kill -9 of the service mid {args.trivial} jobs ({r['done_before_kill']} done): lost / run twice",
            f"{r['lost']} / {r['twice']}",
            "",
            "",
        )
    )
    print_rows("batchai vs Ray Jobs (same machine, same run)", rows, ("measure", "batchai", "Ray Jobs", "batchai/Ray"))
    return result


def measure_restart(jobs: int) -> dict:
    """kill -9 of the service after about a quarter of `jobs` trivial jobs ended; every job must run once."""
    with Service() as service:
        service.make_cluster("two", 2)
        marks = os.path.join(service.base, "marks")
        os.makedirs(marks)
        names = [f"r{i:04d}" for i in range(jobs)]
        for name in names:
            command = f"echo x >> {marks}/{name}"
            service.client.create_job(
                "default", "default", {"cluster": "two", "customToolkitSettings": {"commandLine": command}}, name
            )
        while len(os.listdir(marks)) < jobs // 4:
            time.sleep(0.005)
        done_before = len(os.listdir(marks))
        service.kill_and_restart()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            states = [j["executionState"] for j in service.client.list("workspaces/default/experiments/default/jobs")]
            if all(s in ("succeeded", "failed") for s in states):
                break
            time.sleep(0.2)
        runs = {}
        for name in names:
            try:
                with open(os.path.join(marks, name)) as handle:
                    runs[name] = len(handle.readlines())
            except FileNotFoundError:
                runs[name] = 0
        failed = sum(1 for s in states if s != "succeeded")
    return {
        "jobs": jobs,
        "done_before_kill": done_before,
        "lost": sum(1 for n in runs.values() if n == 0),
        "twice": sum(1 for n in runs.values() if n > 1),
        "not_succeeded": failed,
    }


def _progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _ms(value: float | None) -> str:
    return f"{value:.1f} ms" if value is not None else ""


def _s(value: float | None) -> str:
    return f"{value:.2f} s" if value is not None else ""


def _rate(value: float | None) -> str:
    return f"{value:.2f}/s" if value is not None else ""


def _mib(kib: float | None) -> str:
    return f"{kib / 1024:.2f} MiB" if kib is not None else ""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the reduced run (under 2 minutes)")
    parser.add_argument("--no-ray", action="store_true", help="batchai's side only")
    parser.add_argument("--ray-venv", default=RAY_VENV)
    parser.add_argument("--json", help="where the result goes (default benchmarks/results/vs_ray.json)")
    args = parser.parse_args(argv)
    full = not args.quick
    args.empty = 10 if full else 3
    args.trivial = 200
    args.ray_trivial = 200 if full else 5
    args.sleeping = 20
    args.ray_sleeping = 20 if full else 5
    args.sleep_seconds = 600
    args.finished = 2000 if full else 500
    args.ray_finished = 2000 if full else 0
    socket.setdefaulttimeout(None)
    result = measure(args)
    print(f"  written to {write_result('vs_ray', result, args.json)}")
    return result


if __name__ == "__main__":
    main()
