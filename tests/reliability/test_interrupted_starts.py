"""A start that takes the service down with it (a crash while it hands the job's task to the node, every
time) does not loop for ever: the restarted service runs the interrupted attempt again, and after
lifecycle.MAX_INTERRUPTIONS such attempts in a row the job fails, saying why. In process, with the local
backend and the real store; the fault is injected into the backend's start of a task."""

from __future__ import annotations

import pytest

from batchai_jupyter.assembly import build_service
from batchai_jupyter.core.lifecycle import MAX_INTERRUPTIONS
from batchai_jupyter.core.service import Service, Settings
from helpers.waits import wait_for


class ServiceDied(BaseException):
    """What the service's process dying at that moment looks like to the code that was running."""


def _dies(*args, **kwargs):
    raise ServiceDied()


# Where the service dies: before the attempt's tasks are recorded (staging its inputs), or after, as it hands
# the recorded task to the node (the restarted service hands over again what no process took up).
MOMENTS = {
    "starting": lambda service: setattr(service.runner.data, "prepare", _dies),
    "handing over the tasks of": lambda service: setattr(service.backends["local"], "start_task", _dies),
}


def _cycles_until_it_dies(service: Service) -> bool:
    """One cluster cycle after another, as the engine runs them, until the service 'dies' (True) or the job
    has ended (False)."""
    try:
        service.engine.cluster_cycle("default", "c")
    except ServiceDied:
        return True
    return service.get_job("default", "default", "j")["executionState"] in ("succeeded", "failed")


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_start_that_always_takes_the_service_down_ends_failed_after_a_few_tries(tmp_path, moment):
    home = str(tmp_path / "home")
    for restart in range(MAX_INTERRUPTIONS + 1):
        service = build_service(Settings(home=home))
        MOMENTS[moment](service)
        try:
            if restart == 0:
                service.create_cluster("default", {"backend": "local", "nodeCount": 1}, "c")
                service.create_job(
                    "default", "default", {"cluster": "c", "customToolkitSettings": {"commandLine": "true"}}, "j"
                )
            wait_for(lambda service=service: _cycles_until_it_dies(service), "the start, or the job's end")
            job = service.get_job("default", "default", "j")
        finally:
            service.stop()
        if job["executionState"] == "failed":
            break
    assert (job["executionState"], restart) == ("failed", MAX_INTERRUPTIONS), job
    errors = job["executionInfo"]["errors"]
    last = errors[-1]["message"]
    assert errors[-1]["code"] == "AttemptsInterrupted", errors
    assert f"while it was {moment} attempt" in last and f"{MAX_INTERRUPTIONS} interruptions in a row" in last, last
    assert "not tried again" in last, last
    if moment == "starting":  # each interruption before it was a requeue, said as such
        assert [e["code"] for e in errors] == ["AttemptInterrupted"] * (MAX_INTERRUPTIONS - 1) + ["AttemptsInterrupted"]
        assert job["attempt"] == MAX_INTERRUPTIONS


def test_an_attempt_that_ends_otherwise_starts_the_count_again(tmp_path):
    """Interruptions count in a row only: an attempt that fails with a retry left resets the count."""
    service = build_service(Settings(home=str(tmp_path / "home")))
    try:
        service.create_cluster("default", {"backend": "local", "nodeCount": 1}, "c")
        service.create_job(
            "default",
            "default",
            {"cluster": "c", "customToolkitSettings": {"commandLine": "exit 3"}, "maxRetries": 1},
            "j",
        )
        row = service.store.job_by_name("default", "default", "j")
        service.store.update("jobs", {"id": row.id}, interruptions=MAX_INTERRUPTIONS - 1)
        service.start()
        wait_for(
            lambda: service.get_job("default", "default", "j")["executionState"] == "failed", "the job to fail twice"
        )
        job = service.store.job_by_name("default", "default", "j")
        assert (job.retries_used, job.interruptions, job.errors[-1]["code"]) == (1, 0, "JobFailed"), job
    finally:
        service.stop()
