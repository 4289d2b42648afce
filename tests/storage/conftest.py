"""Fixtures for the storage tests: a real Azurite (Microsoft's Azure Storage emulator) per test module."""

from __future__ import annotations

import pytest

from helpers.azurite_server import Azurite


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    server = Azurite(str(tmp_path_factory.mktemp("azurite"))).start()
    yield server
    server.stop()
