"""The REST API against a real `batchai serve`: refusals, auth, paging, ranged reads, secrets, events.

Every refusal must be a 4xx whose JSON body is exactly {"error": code, "message": ...}, the
message naming what was wrong and where, and a refused create must leave nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid

import pytest
import requests

from helpers.api import make_cluster, submit, wait_job
from helpers.service import TOKEN
from helpers.waits import wait_for

API = "batchai/api/v1"
JOBS = "workspaces/default/experiments/default/jobs"
CLUSTERS = "workspaces/default/clusters"
ECHO = {"customToolkitSettings": {"commandLine": "echo hi"}}


def call(service, method: str, path: str, token: str | None = TOKEN, **kwargs) -> requests.Response:
    """One raw HTTP request to the service (no client-side checks), with `token` unless None."""
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"token {token}"
    return requests.request(method, f"{service.url}{API}/{path}", headers=headers, timeout=30, **kwargs)


def refused(response: requests.Response, status: int, code: str, *fragments: str) -> str:
    """Asserts a clean refusal and returns its message."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error", "message"}, body
    assert body["error"] == code, body
    message = body["message"]
    assert "Traceback" not in message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def names(service, path: str) -> set[str]:
    response = call(service, "GET", path)
    assert response.status_code == 200, response.text
    return {item["name"] for item in response.json()["value"]}


@pytest.fixture(scope="module")
def cluster(shared_service) -> str:
    """A one-node cluster the module's jobs run on."""
    from batchai_jupyter.client import Client

    name = "api-" + uuid.uuid4().hex[:6]
    make_cluster(Client(shared_service.url, TOKEN), name, nodes=1)
    return name


# ---- bodies that are not JSON objects -----------------------------------------------------------


@pytest.mark.parametrize(
    "body, fragment",
    [("{not json", "not valid JSON"), ("[1, 2]", "must be a JSON object"), ('"text"', "must be a JSON object")],
)
@pytest.mark.parametrize(
    "method, path", [("POST", CLUSTERS), ("PUT", f"{CLUSTERS}/bodytest"), ("POST", JOBS), ("PUT", f"{JOBS}/bodytest")]
)
def test_a_body_that_is_not_a_json_object_is_refused(shared_service, method, path, body, fragment):
    clusters, jobs = names(shared_service, CLUSTERS), names(shared_service, JOBS)
    response = call(shared_service, method, path, data=body, headers={"Content-Type": "application/json"})
    refused(response, 400, "InvalidJson", fragment, "JSON object")
    assert names(shared_service, CLUSTERS) == clusters
    assert names(shared_service, JOBS) == jobs


# ---- bad job specs ------------------------------------------------------------------------------

BAD_JOBS = {
    "unknown toolkit block": (
        {"fooSettings": {"commandLine": "x"}},
        "MissingField",
        ["exactly one toolkit block", "customToolkitSettings", "pyTorchSettings"],
    ),
    "two toolkit blocks": (
        {**ECHO, "pyTorchSettings": {"pythonScriptFilePath": "train.py"}},
        "InvalidSpec",
        ["exactly one toolkit block", "pyTorchSettings", "customToolkitSettings"],
    ),
    "nodeCount 0": ({**ECHO, "nodeCount": 0}, "InvalidSpec", ["nodeCount", "0", "an integer from 1 to 1000"]),
    "nodeCount abc": ({**ECHO, "nodeCount": "abc"}, "InvalidSpec", ["nodeCount", "'abc'", "an integer from 1 to 1000"]),
    "nodeCount 100000": ({**ECHO, "nodeCount": 100000}, "InvalidSpec", ["nodeCount", "100000", "1 to 1000"]),
    "bad maxWallClockTime": (
        {**ECHO, "constraints": {"maxWallClockTime": "soon"}},
        "InvalidSpec",
        ["constraints.maxWallClockTime", "'soon'", "7.00:00:00", "P7D"],
    ),
    "negative maxWallClockTime": (
        {**ECHO, "constraints": {"maxWallClockTime": -5}},
        "InvalidSpec",
        ["constraints.maxWallClockTime", "-5", "positive duration"],
    ),
    "bad priority": (
        {**ECHO, "schedulingPriority": "urgent"},
        "InvalidSpec",
        ["schedulingPriority", "'urgent'", "low, normal, high"],
    ),
    "Key Vault secret": (
        {**ECHO, "secrets": [{"name": "S", "valueSecretReference": {"secretUrl": "https://kv"}}]},
        "UnsupportedSecretReference",
        ["secrets[0].valueSecretReference", "put the secret"],
    ),
    "command not a string": (
        {"customToolkitSettings": {"commandLine": 5}},
        "InvalidSpec",
        ["customToolkitSettings.commandLine", "a string"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_JOBS))
def test_a_bad_job_spec_is_refused_and_nothing_is_created(shared_service, cluster, case):
    spec, code, fragments = BAD_JOBS[case]
    before = names(shared_service, JOBS)
    response = call(shared_service, "PUT", f"{JOBS}/bad-job", json={"cluster": cluster, **spec})
    refused(response, 400, code, *fragments)
    response = call(shared_service, "POST", JOBS, json={"name": "bad-job-post", "cluster": cluster, **spec})
    refused(response, 400, code, *fragments)
    assert names(shared_service, JOBS) == before


def test_a_batch_ai_job_file_names_its_fields_under_properties(shared_service, cluster):
    before = names(shared_service, JOBS)
    document = {
        "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/job.json",
        "properties": {"cluster": cluster, "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs", **ECHO},
    }
    refused(
        call(shared_service, "PUT", f"{JOBS}/no-node-count", json=document),
        400,
        "MissingField",
        "properties.nodeCount",
        "required",
    )
    assert names(shared_service, JOBS) == before


def test_a_job_bigger_than_an_auto_scaled_cluster_can_grow_is_refused(shared_service, unique):
    small = unique("auto")
    call(shared_service, "PUT", f"{CLUSTERS}/{small}", json={"minNodes": 0, "maxNodes": 1})
    before = names(shared_service, JOBS)
    response = call(shared_service, "PUT", f"{JOBS}/too-big", json={"cluster": small, "nodeCount": 2, **ECHO})
    refused(response, 400, "TooManyNodes", "nodeCount", "maximum 1", small)
    assert names(shared_service, JOBS) == before


BAD_CLUSTERS = {
    "nodeCount abc": ({"nodeCount": "abc"}, "InvalidSpec", ["nodeCount", "'abc'", "an integer from 0 to 1000"]),
    "nodeCount -1": ({"nodeCount": -1}, "InvalidSpec", ["nodeCount", "-1"]),
    "nodeCount 1000000": ({"nodeCount": 1000000}, "InvalidSpec", ["nodeCount", "1000000", "0 to 1000"]),
    "manual and autoScale": (
        {
            "scaleSettings": {
                "manual": {"targetNodeCount": 1},
                "autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 2},
            }
        },
        "InvalidSpec",
        ["scaleSettings.manual", "scaleSettings.autoScale", "not both"],
    ),
    "unknown backend": ({"backend": "nowhere", "nodeCount": 1}, "UnknownBackend", ["'nowhere'", "local"]),
    "Batch AI file without vmSize": (
        {"properties": {"scaleSettings": {"manual": {"targetNodeCount": 1}}}},
        "MissingField",
        ["properties.vmSize", "required"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_CLUSTERS))
def test_a_bad_cluster_spec_is_refused_and_nothing_is_created(shared_service, case):
    spec, code, fragments = BAD_CLUSTERS[case]
    before = names(shared_service, CLUSTERS)
    refused(call(shared_service, "PUT", f"{CLUSTERS}/bad-cluster", json=spec), 400, code, *fragments)
    assert names(shared_service, CLUSTERS) == before


# ---- names --------------------------------------------------------------------------------------

BAD_NAMES = {"space": "a b", "65 chars": "x" * 65, "dot": "a.b"}


@pytest.mark.parametrize("bad", list(BAD_NAMES))
def test_bad_names_are_refused_everywhere(shared_service, cluster, bad):
    name = BAD_NAMES[bad]
    clusters, jobs = names(shared_service, CLUSTERS), names(shared_service, JOBS)
    workspaces = names(shared_service, "workspaces")
    experiments = names(shared_service, "workspaces/default/experiments")
    quoted = requests.utils.quote(name, safe="")
    for path, body in [
        (f"workspaces/{quoted}", None),
        (f"workspaces/default/experiments/{quoted}", None),
        (f"{CLUSTERS}/{quoted}", {"nodeCount": 0}),
        (f"{JOBS}/{quoted}", {"cluster": cluster, **ECHO}),
    ]:
        message = refused(
            call(shared_service, "PUT", path, json=body), 400, "InvalidName", repr(name), "1-64 characters"
        )
        assert "letters, digits, '-' and '_'" in message
    refused(
        call(shared_service, "POST", JOBS, json={"name": name, "cluster": cluster, **ECHO}),
        400,
        "InvalidName",
        "name:",
        "job names",
    )
    assert names(shared_service, CLUSTERS) == clusters and names(shared_service, JOBS) == jobs
    assert names(shared_service, "workspaces") == workspaces
    assert names(shared_service, "workspaces/default/experiments") == experiments


def test_a_64_character_name_is_accepted(shared_service, unique):
    name = unique("n").ljust(64, "x")
    response = call(shared_service, "PUT", f"{CLUSTERS}/{name}", json={"nodeCount": 0})
    assert response.status_code == 201, response.text
    assert name in names(shared_service, CLUSTERS)


# ---- references to things that do not exist, duplicates ----------------------------------------


def test_a_job_on_an_unknown_cluster_is_refused(shared_service):
    before = names(shared_service, JOBS)
    response = call(shared_service, "PUT", f"{JOBS}/orphan", json={"cluster": "no-such-cluster", **ECHO})
    refused(response, 404, "ClusterNotFound", "no-such-cluster", "batchai cluster create")
    assert names(shared_service, JOBS) == before


def test_a_duplicate_job_is_a_conflict_and_leaves_the_first_alone(shared_service, cluster, unique):
    name = unique("dup")
    first = call(shared_service, "PUT", f"{JOBS}/{name}", json={"cluster": cluster, **ECHO})
    assert first.status_code == 201, first.text
    second = call(
        shared_service,
        "PUT",
        f"{JOBS}/{name}",
        json={"cluster": cluster, "customToolkitSettings": {"commandLine": "echo second"}},
    )
    refused(second, 409, "JobExists", name, "pick another name")
    job = call(shared_service, "GET", f"{JOBS}/{name}").json()
    assert job["uuid"] == first.json()["uuid"]
    assert job["properties"]["customToolkitSettings"]["commandLine"] == "echo hi"
    assert sorted(names(shared_service, JOBS)).count(name) == 1


def test_a_duplicate_cluster_is_a_conflict_and_leaves_the_first_alone(shared_service, unique):
    name = unique("dupc")
    first = call(shared_service, "PUT", f"{CLUSTERS}/{name}", json={"nodeCount": 0})
    assert first.status_code == 201, first.text
    refused(call(shared_service, "PUT", f"{CLUSTERS}/{name}", json={"nodeCount": 3}), 409, "ClusterExists", name)
    refused(call(shared_service, "POST", CLUSTERS, json={"name": name, "nodeCount": 3}), 409, "ClusterExists", name)
    cluster = call(shared_service, "GET", f"{CLUSTERS}/{name}").json()
    assert cluster["uuid"] == first.json()["uuid"]
    assert cluster["targetNodeCount"] == 0


@pytest.mark.parametrize(
    "method, path, code, fragment",
    [
        ("GET", "workspaces/nowhere", "WorkspaceNotFound", "'nowhere'"),
        ("GET", "workspaces/nowhere/clusters", "WorkspaceNotFound", "batchai workspace list"),
        ("GET", "workspaces/nowhere/experiments/default/jobs", "WorkspaceNotFound", "'nowhere'"),
        ("DELETE", "workspaces/nowhere", "WorkspaceNotFound", "'nowhere'"),
        ("GET", "workspaces/default/experiments/noexp", "ExperimentNotFound", "batchai experiment create"),
        ("GET", "workspaces/default/experiments/noexp/jobs", "ExperimentNotFound", "'noexp'"),
        ("GET", f"{JOBS}/nojob", "JobNotFound", "batchai job list"),
        ("DELETE", f"{JOBS}/nojob", "JobNotFound", "'nojob'"),
        ("POST", f"{JOBS}/nojob/terminate", "JobNotFound", "'nojob'"),
        ("GET", f"{JOBS}/nojob/files", "JobNotFound", "'nojob'"),
        ("GET", f"{JOBS}/nojob/tasks", "JobNotFound", "'nojob'"),
        ("GET", f"{CLUSTERS}/nocluster", "ClusterNotFound", "batchai cluster create"),
        ("GET", f"{CLUSTERS}/nocluster/nodes", "ClusterNotFound", "'nocluster'"),
        ("DELETE", f"{CLUSTERS}/nocluster", "ClusterNotFound", "'nocluster'"),
    ],
)
def test_unknown_resources_are_404(shared_service, method, path, code, fragment):
    refused(call(shared_service, method, path), 404, code, fragment)


# ---- files: output directory ids, paths, offsets -------------------------------------------------


@pytest.fixture(scope="module")
def finished_job(shared_service, cluster) -> str:
    from batchai_jupyter.client import Client

    client = Client(shared_service.url, TOKEN)
    spec = {
        "customToolkitSettings": {"commandLine": "echo done; echo m > $AZ_BATCHAI_OUTPUT_MODEL/m.txt"},
        "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs"}],
    }
    submit(client, "files-job", cluster, spec)
    assert wait_job(client, "files-job")["executionState"] == "succeeded"
    return "files-job"


def test_a_wrong_output_directory_id_names_the_valid_ones(shared_service, finished_job):
    for path in (f"{JOBS}/{finished_job}/files", f"{JOBS}/{finished_job}/files/content"):
        refused(
            call(shared_service, "GET", path, params={"outputdirectoryid": "NOPE", "path": "m.txt"}),
            400,
            "InvalidOutputDirectoryId",
            "'NOPE'",
            "stdouterr, MODEL",
        )
    listing = call(shared_service, "GET", f"{JOBS}/{finished_job}/files", params={"outputdirectoryid": "MODEL"})
    assert [f["name"] for f in listing.json()["value"]] == ["m.txt"]


@pytest.mark.parametrize(
    "path",
    ["../../etc/passwd", "/etc/passwd", "stdout.txt/../../../../etc/passwd", "..", "../../../../../../../../etc"],
)
def test_paths_leaving_the_datastore_are_refused(shared_service, cluster, finished_job, path):
    for endpoint in (
        f"{JOBS}/{finished_job}/files",
        f"{JOBS}/{finished_job}/files/content",
        f"{CLUSTERS}/{cluster}/files",
        f"{CLUSTERS}/{cluster}/files/content",
    ):
        response = call(shared_service, "GET", endpoint, params={"path": path})
        refused(response, 400, "InvalidPath", repr(path), "relative")
        assert "root:" not in response.text


def test_negative_offsets_and_bad_ranges_are_refused(shared_service, finished_job):
    content = f"{JOBS}/{finished_job}/files/content"
    refused(
        call(shared_service, "GET", content, params={"path": "stdout.txt", "offset": -1}), 400, "InvalidRange", "offset"
    )
    refused(
        call(shared_service, "GET", content, params={"path": "stdout.txt", "length": -3}), 400, "InvalidRange", "length"
    )
    refused(
        call(shared_service, "GET", content, params={"path": "stdout.txt", "offset": "abc"}),
        400,
        "InvalidArgument",
        "offset",
        "'abc'",
        "integer",
    )
    for header in ("bytes=5-2", "bytes=-4", "lines=1-"):
        refused(
            call(shared_service, "GET", content, params={"path": "stdout.txt"}, headers={"Range": header}),
            400,
            "InvalidRange",
        )
    refused(call(shared_service, "GET", content, params={"path": "missing.txt"}), 404, "FileNotFound", "missing.txt")
    refused(call(shared_service, "GET", content), 400, "InvalidPath", "path")


# ---- lists --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, code",
    [(0, "InvalidMaxResults"), (2000, "InvalidMaxResults"), (-1, "InvalidMaxResults"), ("abc", "InvalidArgument")],
)
def test_maxresults_outside_1_to_1000_is_refused(shared_service, value, code):
    for path in ("workspaces", "workspaces/default/experiments", CLUSTERS, JOBS):
        refused(call(shared_service, "GET", path, params={"maxresults": value}), 400, code, "maxresults", str(value))
    assert call(shared_service, "GET", "workspaces", params={"maxresults": 1000}).status_code == 200
    refused(call(shared_service, "GET", "workspaces", params={"skip": -1}), 400, "InvalidSkip", "skip")


def test_a_bad_state_filter_is_refused(shared_service):
    refused(
        call(shared_service, "GET", JOBS, params={"state": "bogus"}),
        400,
        "InvalidArgument",
        "'bogus'",
        "queued, running",
    )


def follow(service, path: str, **params) -> list[list[str]]:
    """The names on each page of a list, following nextLink to the end."""
    pages = []
    response = call(service, "GET", path, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([item["name"] for item in body["value"]])
        if "nextLink" not in body:
            return pages
        assert body["nextLink"].startswith("/batchai/api/v1/"), body["nextLink"]
        response = requests.get(
            service.url.rstrip("/") + body["nextLink"], headers={"Authorization": f"token {TOKEN}"}, timeout=30
        )


def test_lists_page_with_maxresults_and_next_link(shared_service, unique):
    from batchai_jupyter.client import Client

    workspace = unique("pages")
    assert call(shared_service, "PUT", f"workspaces/{workspace}").status_code == 201
    created = [f"exp{i}" for i in range(5)]
    for name in created:
        assert call(shared_service, "PUT", f"workspaces/{workspace}/experiments/{name}").status_code == 201
    expected = sorted(created + ["default"])  # every workspace has its default experiment
    pages = follow(shared_service, f"workspaces/{workspace}/experiments", maxresults=2)
    assert pages == [expected[0:2], expected[2:4], expected[4:6]]
    assert [e["name"] for e in Client(shared_service.url, TOKEN).experiments(workspace)] == expected


def test_next_link_keeps_the_filter(shared_service, unique):
    workspace = unique("filter")
    call(shared_service, "PUT", f"workspaces/{workspace}")
    call(shared_service, "PUT", f"workspaces/{workspace}/clusters/empty", json={"nodeCount": 0})
    jobs = f"workspaces/{workspace}/experiments/default/jobs"
    for name in ("j1", "j2", "j3"):
        assert call(shared_service, "PUT", f"{jobs}/{name}", json={"cluster": "empty", **ECHO}).status_code == 201
    assert call(shared_service, "POST", f"{jobs}/j1/terminate").status_code == 200
    wait_for(
        lambda: call(shared_service, "GET", f"{jobs}/j1").json()["executionState"] == "failed",
        "the terminated queued job to fail",
    )
    assert follow(shared_service, jobs, state="queued", maxresults=1) == [["j2"], ["j3"]]


# ---- PATCH ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, fragment", [({}, "missing"), ({"foo": 1}, "missing"), ({"scaleSettings": "big"}, "not an object")]
)
def test_patch_without_scale_settings_is_refused(shared_service, cluster, body, fragment):
    before = call(shared_service, "GET", f"{CLUSTERS}/{cluster}").json()
    refused(
        call(shared_service, "PATCH", f"{CLUSTERS}/{cluster}", json=body),
        400,
        "InvalidSpec",
        "scaleSettings",
        fragment,
        '{"manual"',
    )
    after = call(shared_service, "GET", f"{CLUSTERS}/{cluster}").json()
    assert after["properties"]["scaleSettings"] == before["properties"]["scaleSettings"]
    assert after["targetNodeCount"] == before["targetNodeCount"] == 1


def test_patch_with_bad_scale_settings_names_the_field(shared_service, cluster):
    refused(
        call(
            shared_service,
            "PATCH",
            f"{CLUSTERS}/{cluster}",
            json={"scaleSettings": {"manual": {"targetNodeCount": -1}}},
        ),
        400,
        "InvalidSpec",
        "scaleSettings.manual.targetNodeCount",
        "-1",
    )
    refused(
        call(
            shared_service,
            "PATCH",
            f"{CLUSTERS}/{cluster}",
            json={"scaleSettings": {"autoScale": {"minimumNodeCount": 3, "maximumNodeCount": 1}}},
        ),
        400,
        "InvalidSpec",
        "scaleSettings.autoScale.maximumNodeCount",
    )
    assert call(shared_service, "GET", f"{CLUSTERS}/{cluster}").json()["targetNodeCount"] == 1


# ---- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_requests_without_the_right_token_are_forbidden(shared_service, token):
    clusters = names(shared_service, CLUSTERS)
    for method, path, body in [
        ("GET", "version", None),
        ("GET", CLUSTERS, None),
        ("GET", JOBS, None),
        ("POST", CLUSTERS, {"name": "intruder", "nodeCount": 1}),
        ("PUT", f"{CLUSTERS}/intruder", {"nodeCount": 1}),
        ("DELETE", "workspaces/default", None),
    ]:
        response = call(shared_service, method, path, token=token, json=body)
        assert response.status_code == 403, (method, path, response.status_code, response.text)
    assert names(shared_service, CLUSTERS) == clusters
    assert "default" in names(shared_service, "workspaces")
    assert call(shared_service, "GET", "version").status_code == 200


# ---- ranged reads of a file being written ----------------------------------------------------------


def test_ranged_reads_follow_a_file_while_the_job_writes_it(shared_service, cluster, tmp_path):
    go = tmp_path / "go"
    command = f"echo first; while [ ! -f {go} ]; do sleep 0.05; done; echo second; echo third"
    job = "ranged-" + uuid.uuid4().hex[:6]
    assert (
        call(
            shared_service,
            "PUT",
            f"{JOBS}/{job}",
            json={"cluster": cluster, "customToolkitSettings": {"commandLine": command}},
        ).status_code
        == 201
    )
    content = f"{JOBS}/{job}/files/content"

    def read(offset: int) -> requests.Response:
        return call(shared_service, "GET", content, params={"path": "stdout.txt", "offset": offset})

    first = wait_for(lambda: (r := read(0)).status_code == 200 and r.content == b"first\n" and r, "the first line")
    assert first.headers["X-BatchAI-Next-Offset"] == "6"
    assert call(shared_service, "GET", f"{JOBS}/{job}").json()["executionState"] == "running"
    assert read(6).content == b""  # nothing new yet
    go.write_text("")
    wait_for(lambda: read(6).content == b"second\nthird\n", "the lines written after the first read")
    assert read(13).content == b"third\n"
    ranged = call(shared_service, "GET", content, params={"path": "stdout.txt"}, headers={"Range": "bytes=6-"})
    assert ranged.status_code == 206 and ranged.content == b"second\nthird\n"
    assert ranged.headers["Content-Range"] == "bytes 6-18/*"
    middle = call(shared_service, "GET", content, params={"path": "stdout.txt"}, headers={"Range": "bytes=6-11"})
    assert middle.status_code == 206 and middle.content == b"second"
    assert read(100).content == b""  # past the end: empty, not an error


# ---- secrets ----------------------------------------------------------------------------------------


def _all_text(service, paths: list[str]) -> str:
    texts = []
    for path in paths:
        response = call(service, "GET", path)
        assert response.status_code == 200, (path, response.text)
        texts.append(response.text)
    return "\n".join(texts)


def _service_log(service) -> str:
    with open(service.log_path, errors="replace") as handle:
        return handle.read()


def test_job_secrets_reach_the_job_but_are_never_returned_or_logged(shared_service, cluster):
    secret = "s3cr3t-" + uuid.uuid4().hex
    job = "secret-" + uuid.uuid4().hex[:6]
    spec = {
        "cluster": cluster,
        "customToolkitSettings": {"commandLine": 'printf %s "$API_KEY" | sha256sum'},
        "secrets": [{"name": "API_KEY", "value": secret}],
        "environmentVariables": [{"name": "PLAIN", "value": "visible"}],
    }
    created = call(shared_service, "PUT", f"{JOBS}/{job}", json=spec)
    assert created.status_code == 201, created.text
    assert secret not in created.text
    finished = wait_for(
        lambda: (
            (j := call(shared_service, "GET", f"{JOBS}/{job}").json())["executionState"] in ("succeeded", "failed")
            and j
        ),
        "the secret job to end",
    )
    assert finished["executionState"] == "succeeded", finished
    stdout = call(shared_service, "GET", f"{JOBS}/{job}/files/content", params={"path": "stdout.txt"})
    assert stdout.text.split()[0] == hashlib.sha256(secret.encode()).hexdigest()  # the job did get it
    assert finished["properties"]["secrets"] == [{"name": "API_KEY"}]
    assert {"name": "PLAIN", "value": "visible"} in finished["properties"]["environmentVariables"]
    everything = _all_text(
        shared_service,
        [
            f"{JOBS}/{job}",
            JOBS,
            "workspaces/default/jobs",
            f"{JOBS}/{job}/tasks",
            f"{JOBS}/{job}/nodes",
            f"{JOBS}/{job}/files",
        ],
    )
    assert secret not in everything
    assert secret not in _service_log(shared_service)


def test_cluster_passwords_keys_and_setup_secrets_are_never_returned(shared_service, unique):
    password, setup_secret, account_key = (f"{kind}-{uuid.uuid4().hex}" for kind in ("pw", "setup", "key"))
    name = unique("sec")
    document = {
        "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/cluster.json",
        "properties": {
            "vmSize": "STANDARD_D1",
            "scaleSettings": {"manual": {"targetNodeCount": 1}},
            "userAccountSettings": {
                "adminUserName": "demo",
                "adminUserPassword": password,
                "adminUserSshPublicKey": "ssh-rsa AAAA demo",
            },
            "nodeSetup": {
                "setupTask": {
                    "commandLine": 'printf %s "$SETUP_SECRET" | sha256sum',
                    "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
                    "secrets": [{"name": "SETUP_SECRET", "value": setup_secret}],
                },
                "mountVolumes": {
                    "azureFileShares": [
                        {
                            "accountName": "acct",
                            "azureFileUrl": "https://acct.file.core.windows.net/share",
                            "relativeMountPath": "afs",
                            "credentials": {"accountKey": account_key},
                        }
                    ]
                },
            },
        },
    }
    created = call(shared_service, "PUT", f"{CLUSTERS}/{name}", json=document)
    assert created.status_code == 201, created.text
    wait_for(
        lambda: call(shared_service, "GET", f"{CLUSTERS}/{name}").json()["nodeStateCounts"]["idleNodeCount"] == 1,
        "the cluster's node to finish its setup task",
        timeout=60,
    )
    files = call(shared_service, "GET", f"{CLUSTERS}/{name}/files").json()["value"]
    outputs = [f for f in files if f["name"].startswith("stdout-setup")]
    assert outputs, files
    setup_out = call(shared_service, "GET", f"{CLUSTERS}/{name}/files/content", params={"path": outputs[0]["path"]})
    assert setup_out.text.split()[0] == hashlib.sha256(setup_secret.encode()).hexdigest()  # it got the secret
    cluster = call(shared_service, "GET", f"{CLUSTERS}/{name}").json()
    assert cluster["properties"]["nodeSetup"]["setupTask"]["secrets"] == [{"name": "SETUP_SECRET"}]
    share = cluster["properties"]["nodeSetup"]["mountVolumes"]["azureFileShares"][0]
    assert share["credentials"]["accountKey"] == "***"
    everything = created.text + _all_text(
        shared_service, [f"{CLUSTERS}/{name}", CLUSTERS, f"{CLUSTERS}/{name}/nodes", f"{CLUSTERS}/{name}/files"]
    )
    for value in (password, setup_secret, account_key):
        assert value not in everything
        assert value not in _service_log(shared_service)


# ---- event stream -----------------------------------------------------------------------------------


def test_the_event_stream_reports_a_job_queued_running_succeeded(shared_service, cluster):
    job = "events-" + uuid.uuid4().hex[:6]
    events: list[dict] = []
    connected, finished = threading.Event(), threading.Event()
    failures: list[BaseException] = []
    responses: list[requests.Response] = []

    def listen() -> None:
        try:
            with requests.get(
                f"{shared_service.url}{API}/events",
                params={"type": "job", "name": job},
                headers={"Authorization": f"token {TOKEN}"},
                stream=True,
                timeout=(5, 60),
            ) as response:
                responses.append(response)
                for line in response.iter_lines(decode_unicode=True):
                    if line.startswith(": connected"):
                        connected.set()
                    elif line.startswith("data: "):
                        events.append(json.loads(line[len("data: ") :]))
                        if events[-1]["state"] in ("succeeded", "failed"):
                            return
        except BaseException as failure:  # reported by the test thread
            failures.append(failure)
        finally:
            connected.set()
            finished.set()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert connected.wait(15), "the event stream never connected"
    assert not failures, failures
    assert responses[0].status_code == 200
    assert responses[0].headers["Content-Type"].startswith("text/event-stream")
    assert (
        call(
            shared_service,
            "PUT",
            f"{JOBS}/{job}",
            json={"cluster": cluster, "customToolkitSettings": {"commandLine": "sleep 0.3"}},
        ).status_code
        == 201
    )
    if not finished.wait(60):
        responses[0].close()
        pytest.fail(f"the stream did not report the end of {job}; got {events}")
    assert not failures, failures
    assert [e["state"] for e in events] == ["queued", "running", "succeeded"], events
    assert all(e["type"] == "job" and e["name"] == job and e["workspace"] == "default" for e in events)
    assert events[-1]["exitCode"] == 0
