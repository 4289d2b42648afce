"""Fixtures for the SSH backend's tests: real sshd hosts, each in its own network namespace."""
from __future__ import annotations

import pytest

from helpers.ssh import make_hosts


@pytest.fixture(scope="module")
def ssh_hosts(tmp_path_factory):
    """Two hosts for the whole module."""
    hosts = make_hosts(tmp_path_factory, 2)
    yield hosts
    hosts.close()
