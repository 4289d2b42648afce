"""Secrets that came back: in a 400 about their type, through a datastore that holds the service's home, and
in the bytes of the store (sealed there: core/sealing.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from helpers.gates import open_gate, wait_gate
from helpers.waits import wait_for

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


def _store_bytes(home: str) -> bytes:
    """Every byte of the store on disk, its write-ahead log and backups included."""
    found = b""
    for name in sorted(os.listdir(home)):
        if name.startswith("batchai.db") and not name.endswith(".key"):
            with open(os.path.join(home, name), "rb") as handle:
                found += handle.read()
    return found


def test_a_jobs_secret_is_not_in_the_store_yet_reaches_the_job_also_after_a_restart(service_process, tmp_path):
    """The store's bytes hold no secret value; the job gets it; a job requeued after a kill -9 and a restart
    of the service still gets it."""
    client = service_process.start()
    client.create_cluster("default", {"backend": "local", "nodeCount": 1}, "c")
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    has_secret = f'test "$(printf %s "$MY_SECRET" | sha256sum | cut -c1-64)" = {digest}'  # the value in no spec
    secrets = [{"name": "MY_SECRET", "value": SECRET}]
    job = {"cluster": "c", "toolkit": "custom", "commandLine": f"{has_secret} && echo delivered", "secrets": secrets}
    client.create_job("default", "default", job, "plain")
    assert client.wait_for_job("default", "default", "plain", timeout=120)["executionState"] == "succeeded"

    # A job whose first attempt fails after the service is killed and started again: its retry needs the secret.
    started, go = tmp_path / "started", tmp_path / "go"
    first_attempt = f"if [ ! -e {started} ]; then touch {started}; {wait_gate(go)}; exit 1; fi"
    job = dict(job, commandLine=f"{first_attempt}; {has_secret}", maxRetries=1)
    client.create_job("default", "default", job, "retried")
    wait_for(started.exists, "the first attempt")
    assert SECRET.encode() not in _store_bytes(service_process.home)
    service_process.kill()
    client = service_process.start()
    open_gate(go)
    done = client.wait_for_job("default", "default", "retried", timeout=120)
    assert (done["executionState"], done["retriesUsed"]) == ("succeeded", 1), done
    service_process.stop()
    assert SECRET.encode() not in _store_bytes(service_process.home)
    assert SECRET not in service_process.log()
