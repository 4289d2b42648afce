"""Fixtures for accidents to the service's home: a home that held jobs, and starting a service on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


class Homes:
    """Copies of one home whose service ran a job to the end and stopped; each test damages its own copy."""

    def __init__(self, original: str, base):
        self.original = original
        self.base = base
        self.copies = 0

    def copy(self) -> str:
        self.copies += 1
        home = str(self.base / f"home-{self.copies}")
        shutil.copytree(self.original, home, symlinks=True)
        return home


@pytest.fixture
def used_home(service_process, client, tmp_path) -> Homes:
    client.create_cluster("default", {"backend": "local", "nodeCount": 1}, "kept")
    client.create_job(
        "default", "default", {"cluster": "kept", "toolkit": "custom", "commandLine": "echo kept"}, "kept-job"
    )
    assert client.wait_for_job("default", "default", "kept-job", timeout=120)["executionState"] == "succeeded"
    service_process.stop()
    return Homes(service_process.home, tmp_path)


@pytest.fixture
def serve_refused(service_process, port):
    """serve_refused(home) -> what `batchai serve` on `home` said when it refused to start."""

    def run(home: str) -> str:
        env = {**service_process.env(), "BATCHAI_HOME": home, "JUPYTER_RUNTIME_DIR": os.path.join(home, "rt")}
        result = subprocess.run(
            [sys.executable, "-m", "batchai_jupyter.cli", "serve", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=90,
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"batchai serve started on {home}:\n{output[-3000:]}"
        return output

    return run
