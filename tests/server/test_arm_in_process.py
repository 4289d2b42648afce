"""The ARM face inside a user's Jupyter server (the extension, not `batchai serve`), under a non-root base
URL: its routes are there, and the URLs it hands out (operations, nextLink) keep the base URL."""

from __future__ import annotations

import json
from urllib.parse import unquote, urlparse

from tornado.httpclient import HTTPClientError

WORKSPACES = (
    "subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces"
)
VERSION = {"api-version": "2018-05-01"}


async def test_arm_routes_and_their_urls_keep_the_base_url(jp_fetch, jp_base_url):
    created = await jp_fetch(WORKSPACES, "inproc", method="PUT", body=json.dumps({"location": "here"}), params=VERSION)
    assert created.code == 202
    for header in ("Azure-AsyncOperation", "Location"):
        url = urlparse(created.headers[header])
        assert unquote(url.path).startswith(unquote(jp_base_url)), url
    status_path = unquote(urlparse(created.headers["Azure-AsyncOperation"]).path)[len(unquote(jp_base_url)) :]
    status = await jp_fetch(*status_path.split("/"), params=VERSION)
    assert json.loads(status.body)["status"] == "Succeeded"

    await jp_fetch(WORKSPACES, "second", method="PUT", body=json.dumps({"location": "here"}), params=VERSION)
    page = json.loads((await jp_fetch(WORKSPACES, params={**VERSION, "maxresults": "1"})).body)
    next_link = urlparse(page["nextLink"])
    assert (
        unquote(next_link.path) == unquote(f"{jp_base_url}{WORKSPACES}") and "api-version=2018-05-01" in next_link.query
    )
    try:
        await jp_fetch("subscriptions", "x", params=VERSION)
    except HTTPClientError as refused:
        assert refused.code == 404 and json.loads(refused.response.body)["error"]["code"] == "NotFound"
    else:
        raise AssertionError("an unknown ARM path was answered")
