"""Fixtures for the Slurm backend's tests: a real Slurm (helpers/slurm_daemons.py) and a real
`batchai serve` whose Slurm commands talk to it (SLURM_CONF), one of each per test module."""
from __future__ import annotations

import pytest

from batchai_jupyter.client import Client
from helpers.service import TOKEN
from helpers.slurm import start_slurm_service, stop_slurm_service
from helpers.slurm_daemons import SLURM_TOOLS, SlurmDaemons
from helpers.tools import require_tool


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


@pytest.fixture
def slurm_client(slurm_service) -> Client:
    return Client(slurm_service.url, TOKEN)
