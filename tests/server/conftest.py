"""In-process tests of the REST handlers: a Jupyter server running in the test's own process and event
loop (pytest-jupyter's `jp_serverapp`), with the batchai extension enabled and its home in the test's
tmp dir. They complement the subprocess tests (tests/test_api.py) with quick checks of the handlers,
under a non-root base URL (pytest-jupyter's `/a%40b/`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

# pytest-jupyter's fixtures are imported here rather than named in the top conftest's `pytest_plugins`:
# its autouse fixtures (an event loop per test, ServerApp clean-up) must run for this folder only.
from pytest_jupyter.jupyter_server import *  # noqa: E402,F401,F403
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from helpers.service import kill_leftover_tasks

API = "batchai/api/v1"


@pytest.fixture
def batchai_home(tmp_path):
    home = tmp_path / "batchai-home"
    yield home
    kill_leftover_tasks(str(home))


@pytest.fixture
def jp_server_config(batchai_home):
    return Config(
        {"ServerApp": {"jpserver_extensions": {"batchai_jupyter": True}}, "BatchAIApp": {"home": str(batchai_home)}}
    )


@dataclass
class Reply:
    status: int
    body: bytes

    def json(self):
        return json.loads(self.body)


@pytest.fixture
def api(jp_fetch):
    """`await api(method, route, body=None, headers=None, **query)` -> Reply, for every status (4xx included).
    `route` is relative to /batchai/api/v1/; a dict body is sent as JSON, a str as it is."""

    async def call(method: str, route: str, body=None, headers: dict | None = None, **query) -> Reply:
        payload = json.dumps(body) if isinstance(body, dict) else body
        try:
            response = await jp_fetch(API, route, method=method, body=payload, headers=headers, params=query)
        except HTTPClientError as failure:
            if failure.response is None:  # no answer at all (a timeout): not a status to check
                raise
            response = failure.response
        return Reply(response.code, response.body or b"")

    return call
