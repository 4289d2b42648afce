"""Unbounded input: every count and size in a job or cluster spec is bounded and refused at submit."""

from __future__ import annotations

import json


def job(cluster: str, name: str, **fields) -> dict:
    return {"name": name, "cluster": cluster, "toolkit": "custom", "commandLine": "true", **fields}


def variables(count: int) -> list[dict]:
    return [{"name": f"V{i}", "value": "x"} for i in range(count)]


def test_100000_environment_variables_get_a_prompt_400_and_nothing_is_made(api, expect_refused, unique):
    name = unique("flood")
    response = api(
        "PUT",
        f"workspaces/default/experiments/default/jobs/{name}",
        json=job("nowhere", name, environmentVariables=variables(100_000)),
        timeout=60,
    )
    expect_refused(response, 400, "environmentVariables", "100000 entries", "at most 1000")
    assert api("GET", f"workspaces/default/experiments/default/jobs/{name}").status_code == 404
    assert api("GET", "version").status_code == 200


def test_every_count_and_size_in_a_job_spec_is_bounded(api, expect_refused, unique, shared_client):
    cluster = unique("limits")
    shared_client.create_cluster("default", {"backend": "local", "nodeCount": 0}, cluster)
    mounts = {
        "azureFileShares": [
            {"azureFileUrl": f"https://a.file.core.windows.net/s{i}", "relativeMountPath": f"m{i}", "accountName": "a"}
            for i in range(33)
        ]
    }
    too_big = {
        "environmentVariables": (dict(environmentVariables=variables(1001)), "1001 entries"),
        "secrets": (dict(secrets=variables(257)), "257 entries"),
        "inputDirectories": (
            dict(inputDirectories=[{"id": f"I{i}", "path": "/tmp"} for i in range(101)]),
            "101 entries",
        ),
        "outputDirectories": (
            dict(outputDirectories=[{"id": f"O{i}", "pathPrefix": "/tmp"} for i in range(101)]),
            "101 entries",
        ),
        "mountVolumes.azureFileShares": (dict(mountVolumes=mounts), "33 entries"),
        "commandLine": (dict(commandLine="x" * 100_001), "100001 characters"),
        "jobPreparation.commandLine": (dict(jobPreparation={"commandLine": "y" * 200_000}), "200000 characters"),
        "environmentVariables.": (
            dict(environmentVariables={f"V{i}": "z" * 99_000 for i in range(11)}),
            "add up to more than",
        ),
    }
    names = []
    for where, (fields, problem) in too_big.items():
        name = unique("big")
        names.append(name)
        response = api("PUT", f"workspaces/default/experiments/default/jobs/{name}", json=job(cluster, name, **fields))
        body = expect_refused(response, 400, problem)
        assert body["error"] == "SpecTooLarge" and body["message"].startswith(where.rstrip(".")), body
    # At the limits, a job is accepted.
    name = unique("fits")
    response = api(
        "PUT",
        f"workspaces/default/experiments/default/jobs/{name}",
        json=job(cluster, name, environmentVariables=variables(1000), secrets=variables(256)),
    )
    assert response.status_code == 201, response.text[:2000]
    listed = {j["name"] for j in shared_client.jobs("default", "default")}
    assert name in listed and not listed & set(names)


def test_cluster_specs_are_bounded_too(api, expect_refused, unique, shared_client):
    name = unique("big-cluster")
    spec = {
        "backend": "local",
        "nodeCount": 1,
        "setupTask": {"commandLine": "true", "environmentVariables": variables(1001)},
    }
    expect_refused(
        api("PUT", f"workspaces/default/clusters/{name}", json=spec),
        400,
        "setupTask.environmentVariables",
        "1001 entries",
    )
    assert name not in {c["name"] for c in shared_client.clusters("default")}


def test_a_json_body_over_4_MiB_is_refused_before_it_is_read(api, expect_refused, unique):
    name = unique("huge")
    body = json.dumps(job("nowhere", name, description="x" * (5 * 1024 * 1024)))
    expect_refused(
        api("PUT", f"workspaces/default/experiments/default/jobs/{name}", data=body), 413, "at most 4194304 bytes"
    )
