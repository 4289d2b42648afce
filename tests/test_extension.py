"""batchai inside a REAL Jupyter server: enabled by the installed config file, served behind Jupyter's auth."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid

import pytest
import requests

from batchai_jupyter.client import Client
from batchai_jupyter.errors import BatchAIError
from helpers.api import make_cluster, read_log, submit, wait_job
from helpers.service import kill_leftover_tasks
from helpers.tools import free_port
from helpers.waits import wait_for_server

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def isolated_env(base, **extra) -> dict:
    """Jupyter and batchai paths all inside `base`, so nothing of the user's setup is involved."""
    env = {
        key: value for key, value in os.environ.items() if key not in ("BATCHAI_URL", "BATCHAI_TOKEN", "JUPYTER_TOKEN")
    }
    env.update(
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTER_DATA_DIR=str(base / "data"),
        BATCHAI_HOME=str(base / "home"),
        **extra,
    )
    return env


class JupyterServer:
    def __init__(self, base):
        self.base = base
        self.port = free_port()
        self.token = "jt-" + uuid.uuid4().hex
        self.env = isolated_env(base)
        self.home = self.env["BATCHAI_HOME"]
        self.runtime_dir = self.env["JUPYTER_RUNTIME_DIR"]
        self.log_path = str(base / "jupyter.log")
        self.url = f"http://127.0.0.1:{self.port}/"
        root = base / "notebooks"
        root.mkdir()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jupyter_server",
                    f"--ServerApp.token={self.token}",
                    f"--port={self.port}",
                    "--ServerApp.ip=127.0.0.1",
                    "--ServerApp.port_retries=0",
                    "--allow-root",
                    "--no-browser",
                    f"--ServerApp.root_dir={root}",
                ],
                env=self.env,
                cwd=str(root),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def log(self) -> str:
        with open(self.log_path, errors="replace") as handle:
            return handle.read()[-5000:]

    def wait_ready(self, timeout: float = 90.0) -> None:
        wait_for_server(self.process, self._serves_batchai, "jupyter server", timeout, self.log)

    def _serves_batchai(self) -> bool:
        response = requests.get(
            f"{self.url}batchai/api/v1/version", headers={"Authorization": f"token {self.token}"}, timeout=5
        )
        return response.status_code == 200

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        kill_leftover_tasks(self.home)


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    server = JupyterServer(tmp_path_factory.mktemp("jupyter"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_the_installed_config_file_enables_the_extension(tmp_path):
    shipped = os.path.join(REPO, "jupyter-config", "jupyter_server_config.d", "batchai_jupyter.json")
    installed = os.path.join(sys.prefix, "etc", "jupyter", "jupyter_server_config.d", "batchai_jupyter.json")
    assert os.path.isfile(installed), f"{installed} missing: the wheel's shared-data did not install it"
    with open(shipped) as a, open(installed) as b:
        assert json.load(a) == json.load(b) == {"ServerApp": {"jpserver_extensions": {"batchai_jupyter": True}}}
    # An empty user config dir: only the installed file can be what enables the extension.
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = ANSI.sub("", result.stdout + result.stderr)
    assert result.returncode == 0, output
    assert re.search(r"^\s*batchai_jupyter enabled\s*$", output, re.MULTILINE), output
    assert re.search(r"batchai_jupyter \S+ OK", output), output
    section = output.split(os.path.join(sys.prefix, "etc", "jupyter"))[1]
    assert "batchai_jupyter enabled" in section.split("Config dir:")[0], output


def test_a_real_jupyter_server_serves_the_api(jupyter):
    response = requests.get(
        f"{jupyter.url}batchai/api/v1/version", headers={"Authorization": f"token {jupyter.token}"}, timeout=10
    )
    assert response.status_code == 200
    body = response.json()
    assert body["api"] == "v1" and body["home"] == jupyter.home
    # Jupyter's own API is there too: the extension lives inside the notebook server.
    status = requests.get(f"{jupyter.url}api/status", headers={"Authorization": f"token {jupyter.token}"}, timeout=10)
    assert status.status_code == 200
    assert requests.get(f"{jupyter.url}batchai/api/v1/version", timeout=10).status_code == 403


def test_the_jupyter_server_runs_a_cluster_and_a_job(jupyter):
    client = Client(jupyter.url, jupyter.token)
    cluster = "jc-" + uuid.uuid4().hex[:6]
    make_cluster(client, cluster, nodes=1)
    submit(
        client, "inside-jupyter", cluster, {"customToolkitSettings": {"commandLine": "echo from $AZ_BATCHAI_JOB_NAME"}}
    )
    job = wait_job(client, "inside-jupyter", timeout=90)
    assert job["executionState"] == "succeeded", job
    assert read_log(client, "inside-jupyter", "stdout.txt") == "from inside-jupyter\n"
    assert os.path.isdir(os.path.join(jupyter.home, "datastores", "default"))


def test_a_post_without_token_or_xsrf_is_refused(jupyter):
    clusters = f"{jupyter.url}batchai/api/v1/workspaces/default/clusters"
    auth = {"Authorization": f"token {jupyter.token}"}
    before = {c["name"] for c in requests.get(clusters, headers=auth, timeout=10).json()["value"]}
    # No token at all (what a page on another site could send): Jupyter's XSRF check refuses it.
    response = requests.post(clusters, json={"name": "sneaky", "nodeCount": 1}, timeout=10)
    assert response.status_code == 403, response.text
    # A browser-like request with an _xsrf cookie but no matching X-XSRFToken: refused as well.
    response = requests.post(
        clusters, json={"name": "sneaky", "nodeCount": 1}, timeout=10, cookies={"_xsrf": "2|made|up|value"}
    )
    assert response.status_code == 403, response.text
    # Another site's page (cookie, foreign Origin, no token): Jupyter blocks cross-origin API calls.
    response = requests.post(
        clusters,
        json={"name": "sneaky", "nodeCount": 1},
        timeout=10,
        cookies={"_xsrf": "2|made|up|value"},
        headers={"Origin": "http://evil.example"},
    )
    assert response.status_code in (403, 404), response.text
    response = requests.put(
        f"{clusters}/sneaky", json={"nodeCount": 1}, headers={"Authorization": "token nope"}, timeout=10
    )
    assert response.status_code == 403, response.text
    after = {c["name"] for c in requests.get(clusters, headers=auth, timeout=10).json()["value"]}
    assert after == before and "sneaky" not in after


def test_the_client_discovers_the_server_through_its_runtime_file(jupyter, monkeypatch):
    runtime_files = [name for name in os.listdir(jupyter.runtime_dir) if re.fullmatch(r"jpserver-\d+\.json", name)]
    assert runtime_files, os.listdir(jupyter.runtime_dir)
    for key in ("BATCHAI_URL", "BATCHAI_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", jupyter.runtime_dir)
    monkeypatch.setenv("BATCHAI_HOME", jupyter.home)
    client = Client.discover(start=False)
    assert client.token == jupyter.token
    assert client.version()["home"] == jupyter.home
    assert f":{jupyter.port}/" in client.url
    # A server that manages another home is not the one this user wants.
    monkeypatch.setenv("BATCHAI_HOME", jupyter.home + "-elsewhere")
    with pytest.raises(BatchAIError) as refused:
        Client.discover(start=False)
    assert refused.value.code == "NoService"


def test_serve_status_shows_the_jupyter_server_and_serve_stop_leaves_it_running(jupyter):
    def serve(action: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "batchai_jupyter.cli", "serve", action],
            env=jupyter.env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    status = serve("status")
    assert status.returncode == 0, status.stdout + status.stderr
    pid = jupyter.process.pid
    assert status.stdout.startswith(f"* http://127.0.0.1:{jupyter.port}/ (inside a Jupyter server, pid {pid}, "), (
        status.stdout
    )
    assert f"home {jupyter.home}, " in status.stdout
    stop = serve("stop")  # the user's Jupyter server is theirs to shut down, not `batchai serve stop`'s
    assert stop.returncode == 1
    assert stop.stderr.strip() == (
        f"error: the batchai service at http://127.0.0.1:{jupyter.port}/ runs inside a "
        f"Jupyter server (pid {pid}); stop that server (File > Shut Down) instead"
    )
    assert jupyter.process.poll() is None
