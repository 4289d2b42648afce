"""REST client for the batchai service, and how it finds (or starts) one.

Discovery order: BATCHAI_URL / BATCHAI_TOKEN; then Jupyter's runtime files of running servers that
have the extension; else a detached local `batchai serve` is started (and the caller is told).
Kernels and the CLI use only this module, never the server code.
"""
from __future__ import annotations

import glob
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote, urljoin

import requests

from .errors import BatchAIError

API = "batchai/api/v1"
START_TIMEOUT_SECONDS = 60.0


def _q(name: str) -> str:
    return quote(name, safe="")


class Client:
    def __init__(self, url: str, token: str = "", timeout: float = 60.0):
        self.url = url.rstrip("/") + "/"
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"token {token}"

    # -- transport ---------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json_body=None, params=None, raw: bool = False,
                headers=None, stream: bool = False):
        url = f"{self.url}{API}/{path.lstrip('/')}"
        try:
            response = self.session.request(method, url, json=json_body, params=params, headers=headers,
                                            timeout=self.timeout, stream=stream)
        except requests.ConnectionError:
            raise BatchAIError("ServiceUnreachable", f"cannot reach the batchai service at {self.url}; is it "
                                                     "running? (`batchai serve` starts one)", status=503) from None
        if response.status_code >= 400:
            raise _error_from(response)
        if stream or raw:
            return response
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, /, **params):
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def list(self, path: str, /, **params) -> list[dict]:
        """All items of a paged list, following nextLink (`params` may include the API's own `path`)."""
        items: list[dict] = []
        result = self.get(path, **params)
        while True:
            items.extend(result["value"])
            if "nextLink" not in result:
                return items
            # nextLink is the server's absolute path (base_url included), so resolve it against the host.
            response = self.session.get(urljoin(self.url, result["nextLink"]), timeout=self.timeout)
            if response.status_code >= 400:
                raise _error_from(response)
            result = response.json()

    # -- resources ---------------------------------------------------------------------------

    def version(self) -> dict:
        return self.get("version")

    def workspaces(self) -> list[dict]:
        return self.list("workspaces")

    def create_workspace(self, name: str) -> dict:
        return self.request("PUT", f"workspaces/{_q(name)}")

    def experiments(self, workspace: str) -> list[dict]:
        return self.list(f"workspaces/{_q(workspace)}/experiments")

    def create_experiment(self, workspace: str, name: str) -> dict:
        return self.request("PUT", f"workspaces/{_q(workspace)}/experiments/{_q(name)}")

    def clusters(self, workspace: str) -> list[dict]:
        return self.list(f"workspaces/{_q(workspace)}/clusters")

    def cluster_path(self, workspace: str, name: str) -> str:
        return f"workspaces/{_q(workspace)}/clusters/{_q(name)}"

    def create_cluster(self, workspace: str, spec: dict, name: str | None = None) -> dict:
        if name:
            return self.request("PUT", self.cluster_path(workspace, name), json_body=spec)
        return self.request("POST", f"workspaces/{_q(workspace)}/clusters", json_body=spec)

    def scale_cluster(self, workspace: str, name: str, scale_settings: dict) -> dict:
        return self.request("PATCH", self.cluster_path(workspace, name), json_body={"scaleSettings": scale_settings})

    def job_path(self, workspace: str, experiment: str, name: str) -> str:
        return f"workspaces/{_q(workspace)}/experiments/{_q(experiment)}/jobs/{_q(name)}"

    def create_job(self, workspace: str, experiment: str, spec: dict, name: str | None = None,
                   cluster: str | None = None) -> dict:
        if name:
            params = {"cluster": cluster} if cluster else None
            return self.request("PUT", self.job_path(workspace, experiment, name), json_body=spec, params=params)
        body = dict(spec, cluster=cluster) if cluster else spec
        return self.request("POST", f"workspaces/{_q(workspace)}/experiments/{_q(experiment)}/jobs", json_body=body)

    def job(self, workspace: str, experiment: str, name: str) -> dict:
        return self.get(self.job_path(workspace, experiment, name))

    def read_job_file(self, workspace: str, experiment: str, name: str, path: str,
                      output_id: str = "stdouterr", offset: int = 0) -> bytes:
        response = self.request("GET", f"{self.job_path(workspace, experiment, name)}/files/content", raw=True,
                                params={"outputdirectoryid": output_id, "path": path, "offset": offset})
        return response.content

    def wait_for_job(self, workspace: str, experiment: str, name: str, timeout: float | None = None,
                     on_change: Callable[[dict], None] | None = None, poll: float = 0.2) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        last_state = None
        while True:
            job = self.job(workspace, experiment, name)
            if job["executionState"] != last_state:
                last_state = job["executionState"]
                if on_change:
                    on_change(job)
            if job["executionState"] in ("succeeded", "failed"):
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise BatchAIError("WaitTimeout", f"job '{name}' is still {last_state} after {timeout:.0f}s")
            time.sleep(poll)

    def events(self, **filters) -> Iterator[dict]:
        response = self.request("GET", "events", params=filters, stream=True)
        for line in response.iter_lines(decode_unicode=True):
            if line and line.startswith("data: "):
                yield json.loads(line[6:])

    # -- discovery ---------------------------------------------------------------------------

    @classmethod
    def discover(cls, start: bool = True, announce: Callable[[str], None] = print) -> Client:
        url = os.environ.get("BATCHAI_URL")
        if url:
            return cls(url, os.environ.get("BATCHAI_TOKEN", ""))
        found = _from_jupyter_runtime()
        if found:
            return found
        if not start:
            raise BatchAIError("NoService", "no batchai service found; start one with `batchai serve` or set "
                                            "BATCHAI_URL and BATCHAI_TOKEN", status=503)
        return start_local_service(announce)


def _error_from(response: requests.Response) -> BatchAIError:
    if response.status_code == 403:  # Jupyter's auth said no, often with a bare "Forbidden"
        try:
            reason = response.json().get("message") or "Forbidden"
        except ValueError:
            reason = "Forbidden"
        where = response.url.split("/batchai/")[0]
        return BatchAIError("Forbidden", f"the batchai service at {where}/ refused the request (403 {reason}); "
                                         "check BATCHAI_TOKEN (the Jupyter server's token)", 403)
    try:
        body = response.json()
        return BatchAIError(body.get("error", "HttpError"), body.get("message", response.reason), response.status_code)
    except ValueError:
        return BatchAIError("HttpError", f"{response.status_code} {response.reason} from {response.url}",
                            response.status_code)


def _wanted_home() -> str | None:
    home = os.environ.get("BATCHAI_HOME")
    return os.path.abspath(os.path.expanduser(home)) if home else None


def _from_jupyter_runtime() -> Client | None:
    from jupyter_core.paths import jupyter_runtime_dir

    files = sorted(glob.glob(os.path.join(jupyter_runtime_dir(), "jpserver-*.json")), key=os.path.getmtime,
                   reverse=True)
    for path in files:
        try:
            with open(path) as handle:
                info = json.load(handle)
            client = _client_for_runtime_info(info)
            version = client.request("GET", "version") if client else None
        except (OSError, ValueError, BatchAIError, requests.RequestException):
            continue
        if version and (_wanted_home() is None or version.get("home") == _wanted_home()):
            return client
    return None


def _client_for_runtime_info(info: dict) -> Client | None:
    pid = info.get("pid")
    if pid:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
    return Client(info["url"], info.get("token", ""))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_local_service(announce: Callable[[str], None] = print) -> Client:
    """Starts `batchai serve` detached (it outlives this process) and waits until it answers."""
    from .ports.layout import default_home

    home = default_home()
    os.makedirs(home, exist_ok=True)
    port, token = _free_port(), secrets.token_hex(24)
    log_path = os.path.join(home, "serve.log")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "batchai_jupyter.cli", "serve", "--port", str(port), "--token", token],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, "BATCHAI_HOME": home})
    client = Client(f"http://127.0.0.1:{port}/", token)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BatchAIError("ServiceStartFailed", f"`batchai serve` exited with code {process.returncode}; "
                                                     f"see {log_path}", status=503)
        try:
            client.version()
            announce(f"Started a local batchai service at {client.url} (pid {process.pid}, log {log_path})")
            return client
        except BatchAIError:
            time.sleep(0.2)
    raise BatchAIError("ServiceStartFailed", f"`batchai serve` did not answer within {START_TIMEOUT_SECONDS:.0f}s; "
                                             f"see {log_path}", status=503)
