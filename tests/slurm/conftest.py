"""Fixtures for the Slurm backend's tests: a real Slurm (helpers/slurm_daemons.py) and a real
`batchai serve` whose Slurm commands talk to it (SLURM_CONF), one of each per test module."""

from __future__ import annotations

import pytest

from batchai_jupyter.client import Client
from helpers.service import TOKEN
from helpers.slurm import slurm, slurm_service  # noqa: F401  (fixtures, shared with tests/notebook)


@pytest.fixture
def slurm_client(slurm_service) -> Client:  # noqa: F811  (the fixture imported above)
    return Client(slurm_service.url, TOKEN)
