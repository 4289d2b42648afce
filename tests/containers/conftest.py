"""Fixtures for jobs in images: one private registry and one small Python image for the whole session,
pushed under several tags (each failure test pulls a tag no job has pulled before)."""

from __future__ import annotations

import secrets

import pytest

from batchai_jupyter.core.containers import DEFAULTS
from helpers.containers import Registry, Storage, build_python_image


class ContainerSetup:
    def __init__(self, registry: Registry, images: dict[str, str], service_storage: Storage):
        self.registry = registry
        self.images = images  # tag -> name in the registry (without its address)
        self.service_storage = service_storage

    def runtime(self) -> dict:
        """The clusters' containerRuntime: the defaults, on the tests' own podman storage, trusting the
        registry's certificate."""
        podman = DEFAULTS["podman"]
        return {
            "name": "podman",
            "globalOptions": [*podman["globalOptions"], *self.service_storage.options()],
            "registryOptions": [f"--cert-dir={self.registry.cert_dir}"],
        }


@pytest.fixture(scope="session")
def container_setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("containers")
    registry = Registry(str(work / "registry"), "batchai", "pw-" + secrets.token_hex(8))
    registry.start()
    builder, service = Storage(str(work / "builder")), Storage(str(work / "service"))
    image = build_python_image(str(work), builder, "localhost/batchai-test/python:built")
    images = {tag: f"batchai-test/python:{tag}" for tag in ("1", "wrong-password", "registry-down")}
    for name in images.values():
        registry.push(builder, image, name)
    yield ContainerSetup(registry, images, service)
    registry.stop()
    builder.remove()
    service.remove()
