"""Job lists page in the store: paging a few hundred jobs through a real `batchai serve`, with and
without filters and at several page sizes, shows every job once, in creation order, with the queue
position the scheduler would give it, and each nextLink leads to the next page of the same list."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest

from batchai_jupyter.core.models import PRIORITY_BY_NAME

PRIORITIES = ("normal", "high", "low", "normal", "high")
ECHO = {"customToolkitSettings": {"commandLine": "echo hi"}}


def _jobs(index: int) -> dict:
    """What the index-th job is: its experiment, cluster, priority and whether it is terminated."""
    return {
        "name": f"j{index:03d}",
        "experiment": "e2" if index % 3 == 0 else "e1",
        "cluster": "a" if index % 2 else "b",
        "priority": PRIORITIES[index % len(PRIORITIES)],
        "terminated": index % 7 == 0,
    }


@pytest.fixture(scope="module")
def listed(shared_service):
    """A workspace with 240 jobs on two clusters that never get nodes (so they stay queued), one in
    seven terminated; and a second workspace whose cluster `a` has high-priority jobs of its own,
    which must not count in the first one's queue positions."""
    from batchai_jupyter.client import Client

    client = Client(shared_service.url, shared_service.env()["BATCHAI_TOKEN"])
    workspace, other = "listing", "listing-other"
    for name in (workspace, other):
        client.create_workspace(name)
        client.create_cluster(name, {"backend": "local", "nodeCount": 0}, "a")
    client.create_cluster(workspace, {"backend": "local", "nodeCount": 0}, "b")
    for experiment in ("e1", "e2"):
        client.create_experiment(workspace, experiment)
    for index in range(3):
        client.create_job(other, "default", {"cluster": "a", "schedulingPriority": "high", **ECHO}, f"o{index}")
    jobs = [_jobs(index) for index in range(240)]
    for job in jobs:
        client.create_job(
            workspace,
            job["experiment"],
            {"cluster": job["cluster"], "schedulingPriority": job["priority"], **ECHO},
            job["name"],
        )
        if job["terminated"]:
            client.request("POST", client.job_path(workspace, job["experiment"], job["name"]) + "/terminate")
    terminated = sum(job["terminated"] for job in jobs)
    deadline = time.monotonic() + 60
    while len(client.list(f"workspaces/{workspace}/jobs", state="failed")) < terminated:  # not failed yet
        assert time.monotonic() < deadline, "the terminated queued jobs did not fail within 60 s"
        time.sleep(0.1)
    return client, workspace, jobs


def _expected_positions(jobs: list[dict]) -> dict[str, int]:
    """The scheduler's order, worked out here from what was submitted: per cluster, higher priority
    first, then older first."""
    positions = {}
    for cluster in ("a", "b"):
        queued = [
            (-PRIORITY_BY_NAME[j["priority"]], index, j["name"])
            for index, j in enumerate(jobs)
            if j["cluster"] == cluster and not j["terminated"]
        ]
        positions.update({name: rank for rank, (_, _, name) in enumerate(sorted(queued), start=1)})
    return positions


def _pages(client, path: str, **params) -> list[dict]:
    """Every page's body, following nextLink exactly as the service wrote it."""
    bodies = [client.get(path, **params)]
    while "nextLink" in bodies[-1]:
        link = bodies[-1]["nextLink"]
        arguments = parse_qs(urlsplit(link).query)
        assert {key: value for key, value in arguments.items() if key not in ("maxresults", "skip")} == {
            key: [str(value)] for key, value in params.items() if key != "maxresults"
        }, link
        assert arguments["skip"] == [str(sum(len(body["value"]) for body in bodies))], link
        response = client.session.get(urljoin(client.url, link), timeout=30)
        assert response.status_code == 200, response.text
        bodies.append(response.json())
    return bodies


@pytest.mark.parametrize(
    "experiment, state, size",
    [
        (None, None, 17),
        (None, None, 1000),
        ("e1", None, 10),
        ("e2", None, 240),
        (None, "queued", 50),
        (None, "failed", 7),
        ("e1", "queued", 33),
        ("e2", "failed", 1),
    ],
)
def test_pages_show_every_job_once_in_order_with_its_queue_position(listed, experiment, state, size):
    client, workspace, jobs = listed
    path = f"workspaces/{workspace}/experiments/{experiment}/jobs" if experiment else f"workspaces/{workspace}/jobs"
    params = {"maxresults": size, **({"state": state} if state else {})}
    bodies = _pages(client, path, **params)

    wanted = [
        j
        for j in jobs
        if experiment in (None, j["experiment"]) and state in (None, "failed" if j["terminated"] else "queued")
    ]
    assert wanted  # every combination above selects some jobs
    assert [len(body["value"]) for body in bodies[:-1]] == [size] * (len(bodies) - 1)
    assert 1 <= len(bodies[-1]["value"]) <= size
    listed_jobs = [job for body in bodies for job in body["value"]]
    assert [job["name"] for job in listed_jobs] == [j["name"] for j in wanted]
    positions = _expected_positions(jobs)
    for job in listed_jobs:
        assert job["executionState"] == ("queued" if job["name"] in positions else "failed")
        assert job.get("queuePosition") == positions.get(job["name"]), job["name"]
    assert client.list(path, **params) == listed_jobs


def test_a_page_past_the_end_is_empty_and_a_job_view_agrees_with_its_list_entry(listed):
    client, workspace, jobs = listed
    assert client.get(f"workspaces/{workspace}/jobs", skip=240) == {"value": []}
    assert client.get(f"workspaces/{workspace}/jobs", skip=239, maxresults=5)["value"][0]["name"] == "j239"
    page = client.get(f"workspaces/{workspace}/experiments/e1/jobs", state="queued", skip=40, maxresults=3)["value"]
    for entry in page:
        single = client.job(workspace, "e1", entry["name"])
        single.pop("waitingReason", None)  # only a single job's view says why it waits
        assert single == entry
