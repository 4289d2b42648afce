"""Fixtures for attacks on the service: raw HTTP against its API, and what `ps` shows of a process
(servers started the way a user starts them: the `launch` fixture of tests/conftest.py)."""
from __future__ import annotations

import pytest
import requests

API = "batchai/api/v1"


def cmdline(pid: int) -> list[str]:
    """What `ps` shows every local user: /proc/<pid>/cmdline."""
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]


@pytest.fixture
def read_cmdline():
    return cmdline


class Api:
    """Raw HTTP to a running service, as an attacker sends it: any method, path, body."""

    def __init__(self, url: str, token: str):
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"
        self.tried = 0

    def __call__(self, method: str, path: str, timeout: float = 120, **kwargs) -> requests.Response:
        self.tried += 1
        return self.session.request(method, f"{self.url}{API}/{path}", timeout=timeout, **kwargs)


@pytest.fixture
def api(shared_service):
    caller = Api(shared_service.url, shared_service.env()["BATCHAI_TOKEN"])
    yield caller
    caller.session.close()


def refused(response: requests.Response, status: int = 400, *words: str) -> dict:
    """The response is a JSON error with `status` whose message holds each of `words`."""
    assert response.status_code == status, f"{response.status_code}: {response.text[:2000]}"
    body = response.json()
    for word in words:
        assert word in body["message"], body
    return body


@pytest.fixture
def expect_refused():
    return refused
