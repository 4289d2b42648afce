"""Service.stop() leaves nothing of the service behind in its process: the engine thread and every
cluster worker end, backends and datastores are closed, and the home can be served again at once
(the running job is re-attached, not lost). In process, with the local backend."""

from __future__ import annotations

import threading

from batchai_jupyter.assembly import build_service
from batchai_jupyter.core.service import Settings
from helpers.waits import wait_for

WAIT_SECONDS = 120.0


def _service_threads() -> set[threading.Thread]:
    """Our threads alive now (as objects: a thread of an earlier test may end meanwhile, and names repeat)."""
    return {t for t in threading.enumerate() if t.name.startswith("batchai-") and t.is_alive()}


def test_stop_ends_every_thread_it_started_and_a_new_service_reattaches(tmp_path):
    before = _service_threads()
    service = build_service(Settings(home=str(tmp_path / "home")))
    service.start()
    try:
        for name in ("one", "two"):
            service.create_cluster("default", {"backend": "local", "nodeCount": 1}, name)
        service.create_job(
            "default", "default", {"cluster": "one", "customToolkitSettings": {"commandLine": "sleep 600"}}, "long"
        )
        wait_for(lambda: service.list_tasks("default", "default", "long"), "the job's task to start")
        assert any(t.name.startswith("batchai-cluster-") for t in _service_threads())
    finally:
        service.stop()
    wait_for(lambda: _service_threads() <= before, "the service's threads to end")

    again = build_service(Settings(home=str(tmp_path / "home")))
    again.start()
    try:
        assert again.get_job("default", "default", "long")["executionState"] == "running"
        again.terminate_job("default", "default", "long")
        wait_for(
            lambda: again.get_job("default", "default", "long")["executionState"] == "failed",
            "the re-attached job to end after terminate",
        )
    finally:
        again.stop()
    wait_for(lambda: _service_threads() <= before, "the second service's threads to end")
