"""The containers tests' own components: a site's copy of Docker Hub (a public registry on 127.0.0.1 with
the test image under the names Batch AI's recipes give, found through a registries.conf)."""

from __future__ import annotations

import pytest

from helpers.containers import DockerHubCopy, Registry, recipe_images


@pytest.fixture(scope="session")
def docker_hub_copy(container_setup, tmp_path_factory):
    """The session's image under each name a recipe in tests/data/recipes gives, in a public registry
    (plain HTTP, no auth) that a registries.conf puts in Docker Hub's place."""
    work = tmp_path_factory.mktemp("docker-hub-copy")
    registry = Registry(str(work / "registry"))
    registry.start()
    for image in recipe_images():
        registry.push(container_setup.builder, container_setup.image, image)
    conf = work / "registries.conf"
    conf.write_text(f'[[registry]]\nprefix = "docker.io"\nlocation = "{registry.address}"\ninsecure = true\n')
    yield DockerHubCopy(registry, str(conf))
    registry.stop()
