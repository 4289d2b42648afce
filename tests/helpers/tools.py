"""What the machine running the tests has: free ports and installed tools."""

from __future__ import annotations

import shutil
import socket

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def require_tool(name: str, install_hint: str) -> str:
    """Tests that need a tool fail (never skip) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; {install_hint} (.ci/run installs it)")
    return path
