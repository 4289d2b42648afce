"""The README's notebook snippets, taken from README.md itself and executed verbatim with nbclient
against a real service (one that also reaches a real Slurm, for the README's Slurm cluster)."""

from __future__ import annotations

import os
import re

import nbformat

from batchai_jupyter.client import Client
from helpers.notebooks import execute_notebook
from helpers.service import TOKEN

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")

# What a user has next to their notebook before the README's cells: a ./data folder for --data, and
# the `lr` that --push sends.
SET_UP = [
    'import os\nos.makedirs("data", exist_ok=True)\nopen("data/part-0.csv", "w").write("x,y\\n1,2\\n")',
    "lr = 0.1",
]
CHECK = (
    'job = _\njob.wait(timeout=240)\nprint("README job", job.name, job.state, "exit code", job.exit_code)\n'
    "print(job.logs(stderr=True))"
)


def readme_notebook_snippets() -> list[str]:
    """The ```python blocks of README.md's "In a notebook" section."""
    with open(README) as handle:
        text = handle.read()
    section = text.split("\n## In a notebook\n", 1)[1].split("\n## ", 1)[0]
    return [block.strip("\n") for block in re.findall(r"```python\n(.*?)```", section, re.S)]


def test_readme_snippets_are_found():
    snippets = readme_notebook_snippets()
    assert len(snippets) == 2
    assert snippets[0].startswith("%load_ext batchai_jupyter") and snippets[1].startswith("%%batchai_job")


def test_readme_notebook_snippets_run_verbatim(slurm_service, tmp_path):
    snippets = readme_notebook_snippets()
    cells = [nbformat.v4.new_code_cell(source) for source in [*SET_UP, *snippets, CHECK]]
    notebook = nbformat.v4.new_notebook(cells=cells)
    outputs = execute_notebook(notebook, slurm_service.url, TOKEN, str(tmp_path), timeout=300)
    first, job_cell, check = outputs[len(SET_UP) :]
    assert "Error" not in first, first
    assert "submitted to cluster 'gpu'" in job_cell, job_cell
    # The job read AZ_BATCHAI_INPUT_TRAIN (from --data train=...) on both ranks and got to the end.
    assert " succeeded exit code 0" in check, check
    assert "--pull weights" not in check, check  # the cell defines what it pulls
    client = Client(slurm_service.url, TOKEN)
    clusters = {name: client.get(client.cluster_path("default", name)) for name in ("gpu", "hpc")}
    assert clusters["gpu"]["backend"] == "local" and clusters["hpc"]["backend"] == "slurm"
