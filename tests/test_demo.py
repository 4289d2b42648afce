"""The README's first command: `batchai demo` on a machine with no service running."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys


def test_demo_starts_a_service_and_runs_a_two_node_job_to_success(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("BATCHAI_", "JUPYTER_"))}
    env |= {"BATCHAI_HOME": str(tmp_path / "home"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    result = subprocess.run(
        [sys.executable, "-m", "batchai_jupyter.cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    # The announcement goes to stderr, so `batchai ... -o json` output stays clean.
    started = re.search(r"Started a local batchai service at \S+ \(pid (\d+)", result.stderr)
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert started, result.stderr
        out = result.stdout
        assert "Created local cluster 'demo' with 2 nodes" in out
        # The state the submission answered with (queued, or already running on an idle cluster), then running.
        assert re.search(r"^Job state: queued \(queue position 1\)$|^Job state: running$", out, re.MULTILINE), out
        assert "Job state: running" in out, out
        assert "Job state: succeeded ExitCode: 0" in out, out
        for rank in (0, 1):  # each rank's log lines came through, and the model learned the line
            assert re.search(rf"\[stdout-{rank}\.txt\] rank {rank} done: weight 3\.000 bias 0\.500", out), out
        # Lines were shown while the job ran: the first log line comes before the final state.
        assert out.index("[stdout-0.txt]") < out.index("Job state: succeeded"), out
        assert re.search(
            r"^  model\.json +\d+ +http://127\.0\.0\.1:\d+/batchai/api/v1/.*path=model\.json$", out, re.MULTILINE
        ), out
        assert "Traceback" not in result.stderr, result.stderr
        # It says how to stop what it started, and that works.
        assert "`batchai serve status` shows it, `batchai serve stop` stops it" in result.stderr, result.stderr
        _stop_the_started_service(env, int(started.group(1)), str(tmp_path / "home"))
    finally:
        if started:
            with contextlib.suppress(ProcessLookupError):  # gone when `serve stop` did its work
                os.kill(int(started.group(1)), signal.SIGTERM)


def _serve(env: dict, action: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "batchai_jupyter.cli", "serve", action],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def _stop_the_started_service(env: dict, pid: int, home: str) -> None:
    status = _serve(env, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    line = status.stdout.splitlines()[0]
    assert line.startswith("* http://127.0.0.1:") and f"(batchai serve, pid {pid}, version " in line, line
    assert f"home {home}, runtime file {env['JUPYTER_RUNTIME_DIR']}/jpserver-{pid}.json)" in line, line
    stop = _serve(env, "stop")
    assert stop.returncode == 0 and stop.stdout.startswith("stopped the batchai service at http://127.0.0.1:"), (
        stop.stdout + stop.stderr
    )
    assert f"(pid {pid}, home {home})" in stop.stdout
    assert not os.path.exists(f"/proc/{pid}")  # stop waits until it is gone
    status = _serve(env, "status")
    assert status.returncode == 1 and status.stdout.startswith("no batchai service is running"), status.stdout
    stop = _serve(env, "stop")  # nothing left: says so, and is not an error
    assert stop.returncode == 0
    assert stop.stdout.strip() == f"no batchai service of home {home} is running; nothing to stop"
