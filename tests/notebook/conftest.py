"""Fixtures for the notebook tests: an IPython shell with the extension loaded, pointed at the module's
real `batchai serve`, and the Workspace API on the same service."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from batchai_jupyter.notebook.experiment_magics import ExperimentMagics
from batchai_jupyter.notebook.magics import BatchAIMagics
from batchai_jupyter.notebook.workspace import Workspace
from helpers.slurm import slurm, slurm_service  # noqa: F401  (fixtures: the README creates a Slurm cluster)


@pytest.fixture
def service_env(shared_service, shared_client, monkeypatch):
    monkeypatch.setenv("BATCHAI_URL", shared_service.url)
    monkeypatch.setenv("BATCHAI_TOKEN", shared_client.token)
    return shared_service


@pytest.fixture
def shell(service_env, tmp_path, monkeypatch):
    """The shell runs in a fresh folder (the notebook's folder: --files and --data are relative to it)."""
    monkeypatch.chdir(tmp_path)
    shell = InteractiveShell.instance()
    shell.register_magics(BatchAIMagics(shell))  # a fresh instance: it finds this module's service
    shell.register_magics(ExperimentMagics(shell))
    shell.user_ns.pop("_", None)
    yield shell
    shell.reset(new_session=False)


@pytest.fixture
def ws(service_env, shared_client) -> Workspace:
    return Workspace(client=shared_client)


@pytest.fixture
def run(shell, capsys):
    """run(code) runs a cell like a notebook does and returns (its value, stdout, stderr)."""

    def run_cell(code: str):
        result = shell.run_cell(code)
        captured = capsys.readouterr()
        return result.result, captured.out, captured.err

    return run_cell
