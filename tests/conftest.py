"""Fixtures every test folder can use: a real `batchai serve` process on a free port with its own
BATCHAI_HOME (one per test, or one per module), a client for it, and unique names.

Helpers that are plain functions live in the `helpers` package; each test folder's conftest.py
adds the fixtures of its own components (Slurm, sshd hosts, Azurite, JupyterLab, ...)."""

from __future__ import annotations

import itertools
import secrets
import shutil
import tempfile
import uuid

import pytest

from batchai_jupyter.client import Client
from helpers.azurite_server import Azurite
from helpers.containers import (
    ContainerSetup,
    Registry,
    Storage,
    build_mpi_image,
    build_python_image,
    build_torch_image,
)
from helpers.processes import LeftoverProbe
from helpers.servers import Launch
from helpers.service import TOKEN, ServiceProcess, kill_leftover_tasks
from helpers.tools import free_port


@pytest.fixture
def service_process(tmp_path):
    service = ServiceProcess(str(tmp_path / "home"), str(tmp_path / "runtime"))
    yield service
    service.stop()
    kill_leftover_tasks(service.home)


@pytest.fixture
def client(service_process) -> Client:
    return service_process.start()


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory):
    """One service for a whole test module, for tests that only add their own uniquely named things."""
    base = tmp_path_factory.mktemp("shared")
    service = ServiceProcess(str(base / "home"), str(base / "runtime"))
    service.start()
    yield service
    service.stop()
    kill_leftover_tasks(service.home)


@pytest.fixture
def shared_client(shared_service) -> Client:
    return Client(shared_service.url, TOKEN)


_names = itertools.count(1)


@pytest.fixture
def unique():
    """unique('job') -> 'job-<n>-<random>' so tests sharing a service never collide."""
    tag = uuid.uuid4().hex[:6]
    return lambda prefix: f"{prefix}-{next(_names)}-{tag}"


@pytest.fixture
def make_azurite(tmp_path):
    """make_azurite(persistent=False) -> an Azurite of the test's own, for tests that stop or restart it;
    `persistent` keeps its blobs on disk across a restart. Whatever is still running is stopped at the end."""
    started = []

    def make(persistent: bool = False) -> Azurite:
        location = str(tmp_path / f"azurite-data-{len(started)}") if persistent else None
        server = Azurite(str(tmp_path / f"azurite-{len(started)}"), location=location).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def leftover_probe() -> LeftoverProbe:
    """A job script whose ranks leave background processes, and a scan for what is left of them."""
    return LeftoverProbe()


@pytest.fixture
def port() -> int:
    """A free TCP port on 127.0.0.1."""
    return free_port()


@pytest.fixture
def launch(tmp_path, port) -> Launch:
    """`batchai serve` or a Jupyter server started the way a user (or an attacker) starts one; stopped at the end."""
    server = Launch(tmp_path, port)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def container_setup(tmp_path_factory) -> ContainerSetup:
    """One private registry (TLS, htpasswd) and one small Python image for the whole session, pushed under
    several tags: each test that needs a first pull pulls a tag no job has pulled before."""
    work = tmp_path_factory.mktemp("containers")
    registry = Registry(str(work / "registry"), "batchai", "pw-" + secrets.token_hex(8))
    registry.start()
    # The nodes' store, outside pytest's base directory: SSH hosts (which do not see that) use it too.
    builder, service = Storage(str(work / "builder")), Storage(tempfile.mkdtemp(prefix="batchai-podman-nodes-"))
    image = build_python_image(str(work), builder, "localhost/batchai-test/python:built")
    images = {
        tag: f"batchai-test/python:{tag}"
        for tag in (
            "1",
            "wrong-password",
            "registry-down",
            "notebook",
            "ssh",
            "slurm",
            "cache-a",
            "cache-b",
            "reused",
            "held",
        )
    }
    for name in images.values():
        registry.push(builder, image, name)
    yield ContainerSetup(registry, images, service, builder, image, str(work))
    registry.stop()
    builder.remove()
    service.remove()
    shutil.rmtree(service.root, ignore_errors=True)


@pytest.fixture(scope="session")
def mpi_image(container_setup) -> str:
    """The session's Python image plus this machine's OpenMPI and mpi4py, in the private registry: its
    name there (without the registry's address)."""
    built = build_mpi_image(container_setup.work, container_setup.builder, "localhost/batchai-test/mpi:built")
    name = "batchai-test/mpi:1"
    container_setup.registry.push(container_setup.builder, built, name)
    return name


@pytest.fixture(scope="session")
def torch_image(container_setup) -> str:
    """The session's Python image plus the tests' PyTorch (CPU), built straight into the store the
    clusters' nodes use (local nodes and SSH hosts alike), as a node-local image (localhost/...: used
    where it is, never pulled): 0.8 GB that no registry round trip is worth."""
    return build_torch_image(container_setup.work, container_setup.service_storage, "localhost/batchai-test/torch:1")
