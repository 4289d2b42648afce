"""Inputs that made the service answer 500 or the CLI print a traceback: each gets a clear 4xx / one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

JOBS = "workspaces/default/experiments/default/jobs"
FILES = "workspaces/default/datastores/default/files"


@pytest.fixture(scope="module")
def linked_job(shared_service):
    """A finished job whose output directory holds a file, a dangling link and links out of the root."""
    from batchai_jupyter.client import Client

    client = Client(shared_service.url, shared_service.env()["BATCHAI_TOKEN"])
    client.create_cluster("default", {"backend": "local", "nodeCount": 1}, "links")
    command = (
        "cd $AZ_BATCHAI_OUTPUT_OUT && echo hi > real.txt && ln -s /nonexistent/target dangling "
        "&& ln -s /etc/passwd passwd && ln -s / root"
    )
    spec = {
        "cluster": "links",
        "customToolkitSettings": {"commandLine": command},
        "outputDirectories": [{"id": "OUT", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/x"}],
    }
    client.create_job("default", "default", spec, "linked")
    assert client.wait_for_job("default", "default", "linked", timeout=120)["executionState"] == "succeeded"
    return "linked"


def test_a_dangling_link_and_links_out_of_the_root_are_listed_as_links_never_followed(api, linked_job, expect_refused):
    response = api("GET", f"{JOBS}/{linked_job}/files", params={"outputdirectoryid": "OUT"})
    assert response.status_code == 200, response.text
    entries = {entry["name"]: entry for entry in response.json()["value"]}
    assert entries["real.txt"]["fileType"] == "file" and entries["real.txt"]["contentLength"] == 3
    for link in ("dangling", "passwd", "root"):
        assert entries[link]["fileType"] == "link" and entries[link]["contentLength"] is None, entries[link]
        assert "downloadUrl" not in entries[link]
    for link in ("passwd", "root/etc/passwd", "dangling"):
        response = api("GET", f"{JOBS}/{linked_job}/files/content", params={"outputdirectoryid": "OUT", "path": link})
        expect_refused(response, 400, "leads outside")
        assert "root:" not in response.text


def test_huge_offsets_lengths_and_ranges(api, linked_job, expect_refused):
    content = f"{JOBS}/{linked_job}/files/content"
    where = {"outputdirectoryid": "OUT", "path": "real.txt"}
    huge = str(10**30)
    for params, headers in (
        ({"offset": huge}, {}),
        ({"length": huge}, {}),
        ({}, {"Range": f"bytes={huge}-"}),
        ({}, {"Range": f"bytes=0-{huge}"}),
        ({"offset": "-1"}, {}),
    ):
        expect_refused(api("GET", content, params={**where, **params}, headers=headers), 400, "offset")
    # Large but valid: past the end is empty, a long length reads what there is.
    for params, expected in (
        ({"offset": str(2**63 - 2)}, b""),
        ({"length": str(2**62)}, b"hi\n"),
        ({"offset": "1", "length": str(2**63 - 1)}, b"i\n"),
    ):
        response = api("GET", content, params={**where, **params})
        assert response.status_code == 200 and response.content == expected, (params, response.text)
    response = api("GET", content, params=where, headers={"Range": f"bytes={2**63 - 2}-"})
    assert response.status_code == 200 and response.content == b""


def test_a_300_character_file_name_on_upload(api, expect_refused, unique):
    long_name = "n" * 300
    for path in (long_name, f"dir/{long_name}", "/".join(["d" * 150] * 8), b"\xed\xa0\x80"):
        response = api("PUT", f"{FILES}/content", params={"path": path}, data=b"data")
        expect_refused(response, 400, "path")
    listed = api("GET", FILES, params={"path": "."})
    assert listed.status_code == 200
    assert not [entry for entry in listed.json()["value"] if entry["name"].startswith(("nnnn", "dddd"))]
    folder = unique("fits")
    assert api("PUT", f"{FILES}/content", params={"path": f"{folder}/{'n' * 200}"}, data=b"ok").status_code == 200


def deep_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize(
    "method,path",
    [
        ("PUT", f"{JOBS}/deep"),
        ("PUT", "workspaces/default/clusters/deep"),
        ("PATCH", "workspaces/default/clusters/deep"),
        ("PUT", "workspaces/default/datastores/deep"),
        ("POST", "workspaces/default/datastores/default/missing"),
    ],
)
def test_deeply_nested_bodies(api, expect_refused, method, path):
    for body in ('{"x": ' + deep_list(100_000) + "}", deep_object(5000), deep_object(70)):
        expect_refused(api(method, path, data=body), 400, "nested")
    # Just inside the limit, each endpoint reads the document and says what is wrong with it.
    response = api(method, path, data='{"mountVolumes": ' + deep_object(60) + "}")
    assert 400 <= response.status_code < 500, response.text[:500]
    assert api("GET", f"{JOBS}/deep").status_code == 404


def test_nan_and_infinity_in_a_body_are_not_numbers(api, expect_refused):
    for body in ('{"nodeCount": NaN}', '{"nodeCount": 1e400}', '{"nodeCount": -Infinity}'):
        expect_refused(api("PUT", "workspaces/default/clusters/nan", data=body), 400, "not valid JSON")


def cli(service, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "batchai_jupyter.cli", *args],
        env=service.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "text,says",
    [
        ('{"name": "j", "x": ' + deep_list(100_000) + "}", "nested too deeply"),
        (deep_object(5000), "nested too deeply"),
        (deep_object(100), "nested more than 64 levels"),
        ('{"name": "j", "nodeCount": NaN}', "NaN is not a JSON number"),
        ('{"name": "j", "nodeCount": 1e400}', "1e400 is too large"),
        ('{"name": "j", "nodeCount": Infinity}', "Infinity is not a JSON number"),
    ],
)
def test_the_cli_says_what_is_wrong_with_a_job_json_in_one_line(shared_service, tmp_path, text, says):
    spec = tmp_path / "job.json"
    spec.write_text(text)
    result = cli(shared_service, "job", "create", "-n", "j", "-c", "c", "-f", str(spec))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "is the service running" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert says in result.stderr and str(spec) in result.stderr


def test_the_cli_says_a_directory_is_not_a_job_json(shared_service, tmp_path):
    result = cli(shared_service, "job", "create", "-n", "j", "-c", "c", "-f", str(tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "cannot be read" in result.stderr and os.fspath(tmp_path) in result.stderr


def test_huge_paging_and_snapshot_arguments(api, linked_job, expect_refused):
    for path in (
        "workspaces/default/jobs",
        "workspaces/default/experiments/default/jobs",
        "workspaces",
        f"{JOBS}/{linked_job}/tasks",
    ):
        for skip in (str(10**30), str(2**63)):
            expect_refused(api("GET", path, params={"skip": skip, "maxresults": "5"}), 400, "skip")
        assert api("GET", path, params={"skip": str(2**62)}).json()["value"] == []
    snapshot = api(
        "GET",
        f"{JOBS}/{linked_job}/snapshot",
        params={"since": [f"{10**30}:stdout.txt", "0:../../../../../../etc/passwd", "0:/etc/passwd"]},
    )
    assert snapshot.status_code == 200 and "root:" not in snapshot.text, snapshot.text[:500]


def test_an_upload_that_runs_into_a_file_or_a_folder(api, expect_refused, unique):
    folder = unique("clash")
    assert api("PUT", f"{FILES}/content", params={"path": f"{folder}/file.txt"}, data=b"x").status_code == 200
    for path in (f"{folder}/file.txt/inner", folder, f"{folder}/file.txt/a/b"):
        expect_refused(api("PUT", f"{FILES}/content", params={"path": path}, data=b"y"), 409, "runs into")
    assert api("GET", f"{FILES}/content", params={"path": f"{folder}/file.txt"}).content == b"x"


@pytest.mark.parametrize(
    "body,says",
    [
        ({"kind": "local", "path": "/tmp/a\u0000b"}, "absolute path"),
        ({"kind": "local", "path": "/tmp/\ud800"}, "absolute path"),
        ({"kind": "local", "path": "/proc/self"}, "register a directory of files"),
        ({"kind": "local", "path": "/dev"}, "register a directory of files"),
        ({"kind": "blob", "containerName": "abc", "accountName": "a", "accountKey": "!!notbase64"}, "refused"),
        (
            {"kind": "blob", "containerName": "abc", "accountName": "a", "accountKey": "a2V5", "endpoint": "not a url"},
            "endpoint: 'not a url' is not valid",
        ),
    ],
)
def test_datastore_settings_no_one_could_use(api, expect_refused, unique, body, says):
    name = unique("ds")
    response = api("PUT", f"workspaces/default/datastores/{name}", data=json.dumps(body))
    assert 400 <= response.status_code < 500, response.text
    assert says in response.json()["message"] and "notbase64" not in response.text and "a2V5" not in response.text
    assert api("GET", f"workspaces/default/datastores/{name}").status_code == 404
