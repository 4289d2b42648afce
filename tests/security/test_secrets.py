"""Secrets that came back: in a 400 about their type, and through a datastore that holds the service's home."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SECRET = "hunter2-do-not-show-me"
WRONG_SHAPES = [
    SECRET,
    [SECRET],
    [{"name": "PASSWORD", "value": {"v": SECRET}}],
    {"PASSWORD": [SECRET]},
    [{"name": "PASSWORD", "value": [SECRET]}],
    12345678,
]


@pytest.mark.parametrize("secrets", WRONG_SHAPES, ids=range(len(WRONG_SHAPES)))
def test_a_secret_of_the_wrong_type_is_never_echoed(api, shared_service, expect_refused, secrets, unique, tmp_path):
    name = unique("secretive")
    job = {"cluster": "c", "toolkit": "custom", "commandLine": "true", "secrets": secrets}
    response = api("PUT", f"workspaces/default/experiments/default/jobs/{name}", json=job)
    expect_refused(response, 400, "secrets")
    assert SECRET not in response.text and "12345678" not in response.text
    cluster = {"backend": "local", "nodeCount": 0, "setupTask": {"commandLine": "true", "secrets": secrets}}
    response = api("PUT", f"workspaces/default/clusters/{name}", json=cluster)
    expect_refused(response, 400, "setupTask.secrets")
    assert SECRET not in response.text and "12345678" not in response.text
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(job))
    result = subprocess.run(
        [sys.executable, "-m", "batchai_jupyter.cli", "job", "create", "-n", name, "-f", str(spec)],
        env=shared_service.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "secrets" in result.stderr, result.stderr
    assert SECRET not in result.stdout + result.stderr and "12345678" not in result.stderr
    assert SECRET not in shared_service.log()


def test_a_local_datastore_at_or_above_the_home_is_refused(api, shared_service, expect_refused, unique, tmp_path):
    home = shared_service.home
    for path in (home, os.path.dirname(home), "/", home + "/.", os.path.dirname(home) + "/../"):
        name = unique("steal")
        response = api("PUT", f"workspaces/default/datastores/{name}", json={"kind": "local", "path": path})
        expect_refused(response, 400, "holds the service's home", "outside")
        assert api("GET", f"workspaces/default/datastores/{name}").status_code == 404
    # A link to the home is the home.
    link = tmp_path / "innocent"
    link.symlink_to(home)
    response = api("PUT", f"workspaces/default/datastores/{unique('link')}", json={"kind": "local", "path": str(link)})
    expect_refused(response, 400, "holds the service's home")
    beside = tmp_path / "data"
    beside.mkdir()
    response = api(
        "PUT", f"workspaces/default/datastores/{unique('fine')}", json={"kind": "local", "path": str(beside)}
    )
    assert response.status_code == 201, response.text
