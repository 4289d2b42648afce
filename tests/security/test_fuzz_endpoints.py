"""A bounded hypothesis run over every create/update endpoint: whatever the body, no 5xx, every refusal a
JSON error with a message, and nothing half-made (a refused request leaves every listing as it was)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = 80
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "",
            "../../etc",
            "local",
            "custom",
            "$AZ_BATCHAI_MOUNT_ROOT/x",
            "a" * 300,
            "\u202e",
            "0",
            "-1",
            "1e400",
            "PT1H",
            "P99999D",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
small_counts = st.integers(-3, 2) | json_values


def shaped(fields: dict) -> st.SearchStrategy:
    """Objects with any subset of `fields` (each from its strategy) plus a few arbitrary keys."""
    return st.fixed_dictionaries({}, optional=fields).flatmap(
        lambda known: st.dictionaries(st.text(max_size=10), json_values, max_size=2).map(
            lambda extra: {**extra, **known}
        )
    )


named_list = st.lists(shaped({"name": json_values, "value": json_values}), max_size=3) | json_values
mounts = shaped(
    {
        kind: st.lists(
            shaped(
                {
                    "relativeMountPath": json_values,
                    "containerName": json_values,
                    "azureFileUrl": json_values,
                    "mountCommand": json_values,
                    "fileServer": json_values,
                    "credentials": json_values,
                }
            ),
            max_size=2,
        )
        | json_values
        for kind in ("azureBlobFileSystems", "azureFileShares", "fileServers", "unmanagedFileSystems")
    }
)
job_bodies = shaped(
    {
        "cluster": st.just("fuzz-idle") | json_values,
        "toolkit": st.sampled_from(["custom", "pytorch", "mpi"]) | json_values,
        "commandLine": st.just("true") | json_values,
        "nodeCount": small_counts,
        "priority": json_values,
        "schedulingPriority": json_values,
        "environmentVariables": named_list,
        "secrets": named_list,
        "inputDirectories": st.lists(shaped({"id": json_values, "path": json_values}), max_size=2) | json_values,
        "outputDirectories": st.lists(shaped({"id": json_values, "pathPrefix": json_values}), max_size=2) | json_values,
        "constraints": shaped({"maxWallClockTime": json_values, "maxRetries": json_values}) | json_values,
        "mountVolumes": mounts | json_values,
        "jobPreparation": json_values,
        "customToolkitSettings": json_values,
        "pyTorchSettings": shaped({"pythonScriptFilePath": json_values, "processCount": small_counts}),
        "properties": json_values,
        "$schema": json_values,
    }
)
# The same fields on a body that is otherwise valid, so each field's own checks are reached.
near_valid_jobs = job_bodies.map(
    lambda body: {**body, "cluster": "fuzz-idle", "toolkit": "custom", "commandLine": "true"}
)
scale = shaped(
    {
        "manual": shaped({"targetNodeCount": small_counts, "nodeDeallocationOption": json_values}),
        "autoScale": shaped(
            {"minimumNodeCount": small_counts, "maximumNodeCount": small_counts, "initialNodeCount": small_counts}
        ),
    }
)
cluster_bodies = shaped(
    {
        "backend": st.just("local") | json_values,
        "nodeCount": small_counts,
        "scaleSettings": scale | json_values,
        "vmSize": json_values,
        "vmPriority": json_values,
        "cpusPerNode": small_counts,
        "gpusPerNode": json_values,
        "setupTask": shaped({"commandLine": json_values, "environmentVariables": named_list, "secrets": named_list}),
        "nodeSetup": json_values,
        "mountVolumes": mounts | json_values,
        "backendOptions": json_values,
        "nativeMounts": json_values,
    }
)
datastore_bodies = shaped(
    {
        "kind": st.sampled_from(["local", "blob"]) | json_values,
        "path": json_values,
        "containerName": json_values,
        "accountName": json_values,
        "accountKey": json_values,
        "connectionString": json_values,
        "retries": json_values,
        "flushSeconds": json_values,
    }
)
near_valid_clusters = cluster_bodies.map(lambda body: {**body, "backend": "local", "nodeCount": 0})
raw_bodies = st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode())


class Tally:
    def __init__(self):
        self.tried = 0
        self.statuses: Counter = Counter()
        self.server_errors: list[str] = []


@pytest.fixture(scope="module")
def tally():
    counts = Tally()
    yield counts
    print(f"\nfuzzed requests: {counts.tried}, by status: {dict(counts.statuses)}, 5xx: {len(counts.server_errors)}")


@pytest.fixture(scope="module")
def idle(shared_service):
    from batchai_jupyter.client import Client

    Client(shared_service.url, shared_service.env()["BATCHAI_TOKEN"]).create_cluster(
        "default", {"backend": "local", "nodeCount": 0}, "fuzz-idle"
    )


LISTED = (
    "workspaces",
    "workspaces/default/experiments",
    "workspaces/default/jobs",
    "workspaces/default/clusters",
    "workspaces/default/datastores",
)


def names(api) -> set[str]:
    """Everything listed, by listing and name (resources being deleted may leave; nothing may come)."""
    return {f"{path}/{item['name']}" for path in LISTED for item in api("GET", path).json()["value"]}


def judged(api, tally, method: str, path: str, body):
    before = names(api)
    data = body if isinstance(body, bytes) else json.dumps(body)
    response = api(method, path, data=data)
    tally.tried += 1
    tally.statuses[response.status_code] += 1
    if response.status_code >= 500:
        tally.server_errors.append(f"{method} {path} {data[:300]!r} -> {response.status_code} {response.text[:300]}")
    assert response.status_code < 500, tally.server_errors[-1]
    if response.status_code >= 400:
        error = response.json()
        assert error.get("error") and error.get("message"), response.text
        appeared = names(api) - before
        assert not appeared, f"{method} {path} was refused ({response.text[:300]}) but made {appeared}"
    return response


def cleanup(api, path: str, response) -> None:
    if response.status_code in (200, 201):
        api("DELETE", path)


@SETTINGS
@given(body=job_bodies | near_valid_jobs)
def test_job_create_put(api, tally, idle, unique, body):
    path = f"workspaces/default/experiments/default/jobs/{unique('fz')}"
    cleanup(api, path, judged(api, tally, "PUT", path, body))


@SETTINGS
@given(body=job_bodies | near_valid_jobs | raw_bodies)
def test_job_create_post(api, tally, idle, body):
    response = judged(api, tally, "POST", "workspaces/default/experiments/default/jobs", body)
    if response.status_code == 201:
        api("DELETE", f"workspaces/default/experiments/default/jobs/{response.json()['name']}")


@SETTINGS
@given(body=cluster_bodies | near_valid_clusters | raw_bodies)
def test_cluster_create(api, tally, unique, body):
    path = f"workspaces/default/clusters/{unique('fz')}"
    cleanup(api, path, judged(api, tally, "PUT", path, body))


@SETTINGS
@given(body=st.fixed_dictionaries({"scaleSettings": scale | json_values}) | cluster_bodies | raw_bodies)
def test_cluster_scale_update(api, tally, idle, body):
    response = judged(api, tally, "PATCH", "workspaces/default/clusters/fuzz-idle", body)
    if response.status_code == 200:
        api(
            "PATCH", "workspaces/default/clusters/fuzz-idle", json={"scaleSettings": {"manual": {"targetNodeCount": 0}}}
        )


@SETTINGS
@given(body=datastore_bodies | raw_bodies)
def test_datastore_create(api, tally, unique, body):
    path = f"workspaces/default/datastores/{unique('fz')}"
    cleanup(api, path, judged(api, tally, "PUT", path, body))


@SETTINGS
@given(name=st.text(min_size=1, max_size=80))
def test_workspace_and_experiment_names(api, tally, name):
    from urllib.parse import quote

    for path in (f"workspaces/{quote(name, safe='')}", f"workspaces/default/experiments/{quote(name, safe='')}"):
        cleanup(api, path, judged(api, tally, "PUT", path, b""))


json_texts = (
    json_values.map(json.dumps)
    | st.binary(max_size=80).map(lambda b: b.decode("latin-1"))
    | st.sampled_from(["[" * 5000, '{"a":' * 3000, "NaN", '{"x": 1e999}', '{"x": -Infinity}', "\ufeff{}"])
)


@SETTINGS
@given(text=json_texts)
def test_the_cli_job_json_reader_says_what_is_wrong_or_reads_an_object(tmp_path, text):
    from batchai_jupyter.errors import BatchAIError
    from batchai_jupyter.jsonfile import fill_placeholders, read_json_object

    path = tmp_path / "job.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        document = fill_placeholders(read_json_object(str(path)), {})
    except BatchAIError as failure:
        assert str(path) in failure.message and "\n" not in failure.message
    else:
        assert isinstance(document, dict)
        json.dumps(document, allow_nan=False)  # what the client then sends
