"""Fixtures for the SSH backend's tests: real sshd hosts, each in its own network namespace."""

from __future__ import annotations

import pytest

from helpers.ssh import make_hosts


@pytest.fixture(scope="module")
def make_ssh_hosts(tmp_path_factory):
    """make_ssh_hosts(count) -> a set of `count` hosts for the module; all are removed at its end."""
    made = []

    def make(count: int):
        hosts = make_hosts(tmp_path_factory, count)
        made.append(hosts)
        return hosts

    yield make
    for hosts in made:
        hosts.close()


@pytest.fixture(scope="module")
def ssh_hosts(make_ssh_hosts):
    """Two hosts for the whole module."""
    return make_ssh_hosts(2)
