"""The Azure backend's fixtures: one fake Resource Manager over HTTPS for the session, its VMs real
sshd hosts in network namespaces, and a `batchai serve` that talks to it with the unmodified SDK."""

from __future__ import annotations

import pytest

from helpers.azure import ADMIN, AzureFixture, register_entry_point, service_env
from helpers.fake_arm import FakeArm, FakeArmServer, FakeImds, Machine, make_self_signed
from helpers.ssh import make_hosts

HOSTS = 3  # two nodes of a job, and a third for the one that replaces an evicted node


@pytest.fixture(scope="session")
def azure(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fake-arm")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    make_self_signed(cert, key)
    hosts = make_hosts(tmp_path_factory, HOSTS, users=(ADMIN,))
    by_address = {h.address: h for h in hosts.hosts}
    machines = [Machine(h.address, h.home, h.name) for h in hosts.hosts]
    arm = FakeArm(machines, on_release=lambda machine: hosts.reimage(by_address[machine.address]))
    server = FakeArmServer(arm, cert, key)
    imds = FakeImds(arm, f"{hosts.subnet}.1")  # the hosts' side of their bridge
    yield AzureFixture(arm, server, imds, hosts, cert)
    imds.close()
    server.close()
    hosts.close()


@pytest.fixture(scope="module")
def azure_service(azure, tmp_path_factory):
    """A `batchai serve` with the azure backend (its entry point as pyproject.toml declares it)."""
    from helpers.service import ServiceProcess

    base = tmp_path_factory.mktemp("azure-service")
    entry_points = register_entry_point(str(base / "entry-points"))
    env = service_env(azure, entry_points, str(base / "jupyter-config"))
    process = ServiceProcess(str(base / "home"), str(base / "runtime"), extra_env=env)
    client = process.start()
    yield process, client
    process.stop()


@pytest.fixture(scope="module")
def azure_shell(azure_service, tmp_path_factory):
    """An IPython shell with the magics, pointed at the module's service (as a notebook's kernel is)."""
    from IPython.core.interactiveshell import InteractiveShell

    from batchai_jupyter.notebook.magics import BatchAIMagics

    process, client = azure_service
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BATCHAI_URL", process.url)
        patch.setenv("BATCHAI_TOKEN", client.token)
        patch.chdir(tmp_path_factory.mktemp("notebook"))
        shell = InteractiveShell.instance()
        shell.register_magics(BatchAIMagics(shell))
        yield shell
        shell.reset(new_session=False)
