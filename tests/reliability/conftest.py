"""Fixtures for accidents to the service's home: a home that held jobs, and starting a service on it."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys

import pytest

from helpers.service import ServiceProcess, kill_leftover_tasks


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


# Figures the tests measured (the kill -9 loop's counts), printed at the end of the run for issue 12's note.
FIGURES: list[str] = []


@pytest.fixture
def report_figure():
    return FIGURES.append


def pytest_terminal_summary(terminalreporter):
    for line in FIGURES:
        terminalreporter.write_line(line)


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
    """serve_refused(home[, runtime_dir]) -> what `batchai serve` on `home` said when it refused to start."""

    def run(home: str, runtime_dir: str = "") -> str:
        runtime_dir = runtime_dir or os.path.join(home, "rt")
        env = {**service_process.env(), "BATCHAI_HOME": home, "JUPYTER_RUNTIME_DIR": runtime_dir}
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


class SmallDisk:
    """A tmpfs of a few MB at `path`: filled, emptied and remounted read-only by the tests."""

    def __init__(self, path: str):
        self.path = path
        self.filler = os.path.join(path, "filler")

    def fill(self) -> None:
        """Writes until the disk says it is full (tmpfs counts whole pages: no byte is left)."""
        descriptor = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while True:
                os.write(descriptor, b"\0" * 4096)
        except OSError as full:
            assert full.errno == errno.ENOSPC, full
        finally:
            os.close(descriptor)

    def is_full(self) -> bool:
        return os.statvfs(self.path).f_bavail == 0

    def empty(self) -> None:
        os.remove(self.filler)

    def remount(self, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", self.path], check=True)


@pytest.fixture
def small_disk(tmp_path):
    path = str(tmp_path / "small")
    os.mkdir(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", path], check=True)
    yield SmallDisk(path)
    subprocess.run(["umount", "-l", path], check=True)


@pytest.fixture
def small_home_service(small_disk, tmp_path):
    """A real `batchai serve` whose home is the small disk."""
    service = ServiceProcess(os.path.join(small_disk.path, "home"), str(tmp_path / "runtime"))
    yield service
    service.stop()
    kill_leftover_tasks(service.home)
