"""A real `batchai serve` whose Slurm commands talk to the test's Slurm (slurm_daemons.py), and clusters on it."""

from __future__ import annotations

import pytest

from batchai_jupyter.client import Client

from .service import ServiceProcess, kill_leftover_tasks
from .slurm_daemons import NODE_NAMES, SLURM_TOOLS, SlurmDaemons
from .tools import require_tool
from .waits import wait_for


class SlurmServiceProcess(ServiceProcess):
    """`batchai serve` on a machine that is a Slurm login node: SLURM_CONF names the test's Slurm."""

    def __init__(self, home: str, runtime_dir: str, slurm: SlurmDaemons):
        super().__init__(home, runtime_dir)
        self.slurm = slurm

    def env(self) -> dict:
        return {**super().env(), "SLURM_CONF": self.slurm.conf}


def start_slurm_service(base, slurm: SlurmDaemons) -> SlurmServiceProcess:
    service = SlurmServiceProcess(str(base / "home"), str(base / "runtime"), slurm)
    service.start()
    return service


def stop_slurm_service(service: SlurmServiceProcess) -> None:
    service.stop()
    kill_leftover_tasks(service.home)


def make_slurm_cluster(client: Client, name: str, spec_extra: dict | None = None, **options) -> dict:
    """A cluster on the test Slurm's `debug` partition, once both its nodes show up idle. `options`:
    backendOptions; `spec_extra`: more of the cluster's spec (e.g. containerRuntime)."""
    spec = {"backend": "slurm", "backendOptions": {"partition": "debug", **options}, **(spec_extra or {})}
    client.create_cluster("default", spec, name)

    def steady():
        cluster = client.get(client.cluster_path("default", name))
        return cluster if cluster["nodeStateCounts"]["idleNodeCount"] == len(NODE_NAMES) else None

    return wait_for(steady, f"slurm cluster {name} to show {len(NODE_NAMES)} idle nodes", timeout=60)


# Fixtures, imported by the conftest.py of each folder whose tests need a real Slurm.


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    for tool in SLURM_TOOLS:
        require_tool(tool, "apt-get install slurm-wlm munge")
    daemons = SlurmDaemons(str(tmp_path_factory.mktemp("slurm")))
    try:
        daemons.start()
        yield daemons
    finally:
        daemons.stop()


@pytest.fixture(scope="module")
def slurm_service(slurm, tmp_path_factory):
    service = start_slurm_service(tmp_path_factory.mktemp("slurm-service"), slurm)
    yield service
    stop_slurm_service(service)
