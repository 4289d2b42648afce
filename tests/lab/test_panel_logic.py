"""The panel's TypeScript unit tests (labextension/test/, Node's test runner), run from pytest."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers.tools import require_tool

LABEXTENSION = Path(__file__).resolve().parents[2] / "labextension"


def test_panel_logic_unit_tests_pass():
    jlpm = require_tool("jlpm", "install jupyterlab (pip install -e .[test])")
    require_tool("node", "install Node.js (apt-get install nodejs)")
    if not (LABEXTENSION / "node_modules" / "typescript").is_dir():
        pytest.fail("labextension/node_modules is missing; run .ci/install.d/40-lab.sh (jlpm install)")
    result = subprocess.run(
        [jlpm, "test"],
        cwd=LABEXTENSION,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "# fail 0" in output and "# pass " in output, output[-4000:]


def test_wheel_ships_the_prebuilt_panel_so_no_node_is_needed(tmp_path):
    """`pip install .` gets the panel from the wheel's data files, built beforehand and committed."""
    import sys
    import zipfile

    root = LABEXTENSION.parent
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(root)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    [wheel] = tmp_path.glob("batchai_jupyter-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shared = [
        n.split("/data/share/jupyter/labextensions/batchai-jupyter/", 1)[1]
        for n in names
        if "/data/share/jupyter/labextensions/batchai-jupyter/" in n
    ]
    assert "package.json" in shared and "install.json" in shared, shared
    assert any(n.startswith("static/remoteEntry.") and n.endswith(".js") for n in shared), shared


def test_labextension_paths_point_at_the_prebuilt_bundle():
    import json

    import batchai_jupyter

    [entry] = batchai_jupyter._jupyter_labextension_paths()
    bundle = Path(batchai_jupyter.__file__).parent / entry["src"]
    assert entry["dest"] == json.loads((LABEXTENSION / "package.json").read_text())["name"]
    built = json.loads((bundle / "package.json").read_text())
    assert (bundle / built["jupyterlab"]["_build"]["load"]).is_file()


def test_committed_bundle_was_built_from_the_current_sources():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sources_digest", LABEXTENSION / "sources_digest.py")
    digest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(digest)
    problem = digest.check()
    assert problem is None, problem
