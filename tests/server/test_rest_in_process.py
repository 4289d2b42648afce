"""The REST handlers in process, through `jp_fetch`: auth, JSON error bodies, clusters and jobs on the
local backend, paging. The same routes are tested against a `batchai serve` subprocess in tests/test_api.py."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qsl, urlparse

import pytest

from helpers.waits import wait_for_async

CLUSTERS = "workspaces/default/clusters"
JOBS = "workspaces/default/experiments/default/jobs"


def error_body(reply, status: int, code: str, *fragments: str) -> dict:
    """`reply` is a clear refusal: `status`, and exactly {"error": code, "message": ...} naming `fragments`."""
    assert reply.status == status, (reply.status, reply.body)
    body = reply.json()
    assert set(body) == {"error", "message"} and body["error"] == code, body
    for fragment in fragments:
        assert fragment in body["message"], (fragment, body)
    return body


async def idle_cluster(api, name: str, nodes: int = 1) -> dict:
    created = await api("PUT", f"{CLUSTERS}/{name}", {"backend": "local", "nodeCount": nodes})
    assert created.status == 201, created.body

    async def idle():
        cluster = (await api("GET", f"{CLUSTERS}/{name}")).json()
        return cluster if cluster["nodeStateCounts"]["idleNodeCount"] == nodes else None

    return await wait_for_async(idle, f"cluster {name} to have {nodes} idle node(s)")


async def finished_job(api, name: str) -> dict:
    async def finished():
        job = (await api("GET", f"{JOBS}/{name}")).json()
        return job if job["executionState"] in ("succeeded", "failed") else None

    return await wait_for_async(finished, f"job {name} to finish", timeout=120)


@pytest.mark.parametrize("authorization", ["", "token not-the-token"])
async def test_requests_without_the_right_token_are_refused(api, authorization):
    refused = {"Authorization": authorization}
    assert (await api("GET", "version", headers=refused)).status == 403
    assert (await api("GET", CLUSTERS, headers=refused)).status == 403
    assert (await api("PUT", f"{CLUSTERS}/intruder", {"nodeCount": 1}, headers=refused)).status == 403
    assert (await api("GET", CLUSTERS)).json()["value"] == []
    assert (await api("GET", "version")).status == 200


@pytest.mark.parametrize("body, fragment", [("{not json", "not valid JSON"), ("[1, 2]", "must be a JSON object")])
async def test_a_body_that_is_not_a_json_object_is_a_400_with_the_error_body(api, body, fragment):
    error_body(await api("PUT", f"{CLUSTERS}/bodytest", body), 400, "InvalidJson", fragment, "JSON object")
    error_body(await api("PUT", f"{JOBS}/bodytest", body), 400, "InvalidJson", fragment, "JSON object")
    error_body(await api("GET", f"{CLUSTERS}/bodytest"), 404, "ClusterNotFound", "bodytest")


async def test_cluster_and_job_create_list_get_delete_on_the_local_backend(api):
    cluster = await idle_cluster(api, "inproc")
    assert cluster["name"] == "inproc" and cluster["backend"] == "local", cluster
    assert [c["name"] for c in (await api("GET", CLUSTERS)).json()["value"]] == ["inproc"]

    created = await api(
        "PUT", f"{JOBS}/hello", {"cluster": "inproc", "customToolkitSettings": {"commandLine": "echo hello in process"}}
    )
    assert created.status == 201 and created.json()["name"] == "hello", created.body
    job = await finished_job(api, "hello")
    assert job["executionState"] == "succeeded", job["executionInfo"]
    assert [j["name"] for j in (await api("GET", "workspaces/default/jobs")).json()["value"]] == ["hello"]
    stdout = await api("GET", f"{JOBS}/hello/files/content", outputdirectoryid="stdouterr", path="stdout.txt")
    assert (stdout.status, stdout.body) == (200, b"hello in process\n")

    assert (await api("DELETE", f"{JOBS}/hello")).status == 204
    error_body(await api("GET", f"{JOBS}/hello"), 404, "JobNotFound", "hello")
    assert (await api("DELETE", f"{CLUSTERS}/inproc")).status == 204
    error_body(await api("GET", f"{CLUSTERS}/inproc"), 404, "ClusterNotFound", "inproc")
    assert (await api("GET", CLUSTERS)).json()["value"] == []


async def test_an_unknown_job_is_a_404_with_the_error_body(api):
    error_body(await api("GET", f"{JOBS}/no-such-job"), 404, "JobNotFound", "no-such-job")
    error_body(await api("POST", f"{JOBS}/no-such-job/terminate", {}), 404, "JobNotFound", "no-such-job")
    error_body(await api("GET", f"{JOBS}/no-such-job/tasks"), 404, "JobNotFound", "no-such-job")


@pytest.mark.parametrize("path", ["workspaces", "workspaces/default/experiments", CLUSTERS, "workspaces/default/jobs"])
async def test_paging_parameters_are_validated(api, path):
    error_body(await api("GET", path, maxresults="0"), 400, "InvalidMaxResults", "maxresults", "1 to 1000")
    error_body(await api("GET", path, maxresults="1001"), 400, "InvalidMaxResults", "maxresults")
    error_body(await api("GET", path, maxresults="abc"), 400, "InvalidArgument", "maxresults", "'abc'")
    error_body(await api("GET", path, skip="-1"), 400, "InvalidSkip", "skip")
    assert (await api("GET", path, maxresults="1000")).status == 200


async def test_a_page_links_to_the_next_under_the_servers_base_url(api, jp_base_url):
    for name in ("exp-a", "exp-b"):
        assert (await api("PUT", f"workspaces/default/experiments/{name}", {})).status == 201
    first = (await api("GET", "workspaces/default/experiments", maxresults="2")).json()
    assert len(first["value"]) == 2 and first["nextLink"].startswith(f"{jp_base_url}batchai/api/v1/"), first
    link = urlparse(first["nextLink"])
    second = (await api("GET", link.path[len(f"{jp_base_url}batchai/api/v1/") :], **dict(parse_qsl(link.query)))).json()
    assert "nextLink" not in second, second
    names = [e["name"] for e in first["value"] + second["value"]]
    assert sorted(names) == ["default", "exp-a", "exp-b"], names


async def test_backends_lists_what_can_create_a_cluster_and_why_not(api):
    reply = await api("GET", "backends")
    assert reply.status == 200, reply.body
    backends = {b["name"]: b for b in reply.json()["value"]}
    assert backends["local"] == {"name": "local", "available": True}
    assert backends["ssh"] == {"name": "ssh", "available": True}
    for backend in backends.values():  # whatever cannot create a cluster here says why
        assert backend["available"] or backend["reason"], backend


def test_azure_is_offered_only_once_a_subscription_is_configured(tmp_path, monkeypatch):
    from batchai_jupyter.backends.azure import create
    from batchai_jupyter.ports.compute import BackendContext
    from batchai_jupyter.ports.layout import HomeLayout

    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    context = BackendContext(HomeLayout(str(tmp_path)))
    assert "AZURE_SUBSCRIPTION_ID" in create(context).missing_setup()
    assert create(replace(context, options={"subscriptionId": "sub-1"})).missing_setup() is None
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "sub-2")
    assert create(context).missing_setup() is None
