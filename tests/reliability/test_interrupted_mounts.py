"""A service that stops while a job's mountCommand runs (on its own thread, the job in its `mount` phase)
kills the command, runs the attempt again when it starts, mount command included, and the job then goes on
to succeed. In process, with the local backend and the real store; the engine's cycles are driven by the
test."""

from __future__ import annotations

import os
import shlex

from batchai_jupyter.assembly import build_service
from batchai_jupyter.core.service import Service, Settings
from helpers.waits import wait_for


def _pid(path) -> int:
    """The pid a mount command wrote; 0 before it has (or while it writes)."""
    try:
        return int(path.read_text())
    except (FileNotFoundError, ValueError):
        return 0


def _cycle_until(service: Service, done) -> bool:
    service.engine.cluster_cycle("default", "c")
    return bool(done(service.get_job("default", "default", "j")))


def test_a_service_stopped_during_a_mount_command_runs_the_attempt_again(tmp_path):
    home = str(tmp_path / "home")
    gate, started = tmp_path / "gate", tmp_path / "started"
    wait = f"while [ ! -f {shlex.quote(str(gate))} ]; do sleep 0.05; done"
    mount = f"echo $$ > {shlex.quote(str(started))}; {wait}; mkdir -p"
    service = build_service(Settings(home=home))
    try:
        service.create_cluster("default", {"backend": "local", "nodeCount": 1}, "c")
        service.create_job(
            "default",
            "default",
            {
                "cluster": "c",
                "mountVolumes": {"unmanagedFileSystems": [{"mountCommand": mount, "relativeMountPath": "m"}]},
                "customToolkitSettings": {"commandLine": "test -d $AZ_BATCHAI_JOB_MOUNT_ROOT/m"},
            },
            "j",
        )
        wait_for(lambda: _cycle_until(service, lambda job: _pid(started)), "the mount command to start")
        assert service.get_job("default", "default", "j")["executionState"] == "running"
    finally:
        service.stop()
    first = _pid(started)
    wait_for(lambda: not os.path.exists(f"/proc/{first}"), "the stopped service's mount command to be killed")

    started.unlink()
    service = build_service(Settings(home=home))
    try:
        wait_for(lambda: _cycle_until(service, lambda job: _pid(started)), "the attempt's mount command again")
        job = service.get_job("default", "default", "j")
        assert [e["code"] for e in job["executionInfo"]["errors"]] == ["AttemptInterrupted"], job
        assert "mounting the volumes of attempt 1" in job["executionInfo"]["errors"][0]["message"]
        gate.write_text("")
        job = wait_for(
            lambda: (
                _cycle_until(service, lambda job: job["executionState"] in ("succeeded", "failed"))
                and service.get_job("default", "default", "j")
            ),
            "the job to end",
        )
        assert job["executionState"] == "succeeded", job
    finally:
        gate.write_text("")
        service.stop()
