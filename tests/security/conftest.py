"""Fixtures for attacks on the service: raw HTTP against its API, and what `ps` shows of a process
(servers started the way a user starts them: the `launch` fixture of tests/conftest.py)."""

from __future__ import annotations

from collections import Counter

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


# Every request the `api` fixture sent this session, by test module and status class ("2xx", "4xx", "5xx").
SENT: Counter = Counter()


class Api:
    """Raw HTTP to a running service, as an attacker sends it: any method, path, body."""

    def __init__(self, url: str, token: str, module: str):
        self.url = url
        self.module = module
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def __call__(self, method: str, path: str, timeout: float = 120, **kwargs) -> requests.Response:
        response = self.session.request(method, f"{self.url}{API}/{path}", timeout=timeout, **kwargs)
        SENT[(self.module, f"{response.status_code // 100}xx")] += 1
        return response


@pytest.fixture
def api(shared_service, request):
    caller = Api(shared_service.url, shared_service.env()["BATCHAI_TOKEN"], request.module.__name__.split(".")[-1])
    yield caller
    caller.session.close()


def pytest_terminal_summary(terminalreporter):
    """The figures issue 12 asks for: requests tried per category, and how many got a 5xx (must be 0)."""
    modules = sorted({module for module, _ in SENT})
    for module in modules:
        counts = {kind: SENT[(module, kind)] for kind in ("2xx", "4xx", "5xx")}
        terminalreporter.write_line(
            f"security requests, {module}: {sum(counts.values())} sent; "
            + ", ".join(f"{kind} {count}" for kind, count in counts.items())
        )


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
