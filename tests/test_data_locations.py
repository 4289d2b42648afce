"""Data named by location (`datastore://<name>/<path>`) on a real service with the local backend: jobs read it,
bad locations are refused at submit, and no response shows where the service keeps its files."""

from __future__ import annotations

import json
import os

import pytest

from batchai_jupyter.client import Client
from batchai_jupyter.errors import BatchAIError

JOB_TIMEOUT = 120.0


def _put(client: Client, datastore: str, path: str, text: str) -> None:
    client.write_datastore_chunk("default", datastore, path, text.encode())


def _reader_job(client: Client, name: str, cluster: str, inputs: dict[str, str]) -> dict:
    """A job that prints each input's files (AZ_BATCHAI_INPUT_<ID>) and ends."""
    command = " && ".join(f'cat "$AZ_BATCHAI_INPUT_{input_id}"/*' for input_id in inputs)
    return client.create_job(
        "default",
        "default",
        {
            "cluster": cluster,
            "nodeCount": 1,
            "customToolkitSettings": {"commandLine": command},
            "inputDirectories": [{"id": input_id, "path": path} for input_id, path in inputs.items()],
        },
        name,
    )


@pytest.fixture
def other_datastore(shared_client, tmp_path, unique):
    """A second local datastore of the workspace, a directory outside the service's home."""
    name = unique("shelf")
    shared_client.create_datastore("default", name, {"kind": "local", "path": str(tmp_path / "shelf")})
    return name


def test_a_job_reads_inputs_named_by_location(shared_client, other_datastore, unique):
    cluster, job = unique("loc"), unique("reads")
    shared_client.create_cluster("default", {"backend": "local", "nodeCount": 1}, cluster)
    folder = unique("sets")
    _put(shared_client, "default", f"{folder}/train/a.txt", "from the default datastore\n")
    _put(shared_client, other_datastore, "labels/b.txt", "from another datastore\n")
    submitted = _reader_job(
        shared_client,
        job,
        cluster,
        {"TRAIN": f"datastore://default/{folder}/./train/", "LABELS": f"datastore://{other_datastore}/labels"},
    )
    assert [d["path"] for d in submitted["properties"]["inputDirectories"]] == [
        f"datastore://default/{folder}/train",
        f"datastore://{other_datastore}/labels",
    ]
    ended = shared_client.wait_for_job("default", "default", job, timeout=JOB_TIMEOUT)
    log = shared_client.read_job_file("default", "default", job, "stdout.txt").decode()
    assert ended["executionState"] == "succeeded", (ended["executionInfo"], log)
    assert log == "from the default datastore\nfrom another datastore\n"


@pytest.mark.parametrize(
    ("path", "code", "says"),
    [
        ("datastore://no-such-store/x", "DatastoreNotFound", "workspace 'default' has no datastore 'no-such-store'"),
        ("datastore://default/../../etc", "InvalidLocation", "points outside datastore 'default'"),
        ("s3://bucket/x", "InvalidLocation", "s3:// locations are not known here"),
    ],
)
def test_a_bad_location_is_refused_at_submit_and_nothing_is_created(shared_client, unique, path, code, says):
    cluster, job = unique("bad"), unique("refused")
    shared_client.create_cluster("default", {"backend": "local", "nodeCount": 1}, cluster)
    with pytest.raises(BatchAIError) as caught:
        _reader_job(shared_client, job, cluster, {"OK": "datastore://default/x", "DATA": path})
    assert (caught.value.status, caught.value.code) == (400, code)
    assert caught.value.message.startswith("inputDirectories[1].path: "), caught.value.message
    assert says in caught.value.message
    assert job not in [j["name"] for j in shared_client.jobs("default")]
    with pytest.raises(BatchAIError) as missing:
        shared_client.job("default", "default", job)
    assert missing.value.status == 404


def _responses(client: Client, job: str) -> list[tuple[str, object]]:
    """Every datastore and job response of the workspace, by route."""
    job_path = client.job_path("default", "default", job)
    answers: list[tuple[str, object]] = [("datastores", client.datastores("default"))]
    for datastore in client.datastores("default"):
        answers.append((f"datastore {datastore['name']}", client.datastore("default", datastore["name"])))
        answers.append((f"datastore {datastore['name']} files", client.datastore_files("default", datastore["name"])))
    answers += [
        ("jobs", client.jobs("default")),
        ("job", client.job("default", "default", job)),
        ("tasks", client.job_tasks("default", "default", job)),
        ("job nodes", client.job_nodes("default", "default", job)),
        ("job files", client.job_files("default", "default", job)),
        ("snapshot", client.job_snapshot("default", "default", job)),
        ("job via request", client.get(job_path)),
    ]
    return answers


def test_no_datastore_or_job_response_shows_the_service_home(shared_service, shared_client, other_datastore, unique):
    cluster, job = unique("home"), unique("quiet")
    shared_client.create_cluster("default", {"backend": "local", "nodeCount": 1}, cluster)
    _put(shared_client, "default", "quiet/a.txt", "a\n")
    _reader_job(shared_client, job, cluster, {"A": "datastore://default/quiet"})
    ended = shared_client.wait_for_job("default", "default", job, timeout=JOB_TIMEOUT)
    assert ended["executionState"] == "succeeded", ended["executionInfo"]
    homes = {shared_service.home, os.path.realpath(shared_service.home)}
    answers = _responses(shared_client, job)
    assert len(answers) >= 10
    for route, answer in answers:
        text = json.dumps(answer)
        assert not [home for home in homes if home in text], f"{route} shows the service's home: {text[:500]}"
    views = shared_client.datastores("default")
    assert {v["name"]: v["location"] for v in views}[other_datastore] == f"datastore://{other_datastore}/"
    assert all("path" not in v for v in views)


def test_a_job_whose_datastore_is_gone_before_it_starts_fails_clearly(shared_client, other_datastore, unique):
    cluster, job = unique("gone"), unique("orphan")
    shared_client.create_cluster("default", {"backend": "local", "nodeCount": 0}, cluster)
    _reader_job(shared_client, job, cluster, {"DATA": f"datastore://{other_datastore}/labels"})
    shared_client.delete_datastore("default", other_datastore)
    shared_client.scale_cluster("default", cluster, {"manual": {"targetNodeCount": 1}})
    ended = shared_client.wait_for_job("default", "default", job, timeout=JOB_TIMEOUT)
    assert ended["executionState"] == "failed"
    [failure] = ended["executionInfo"]["errors"]
    assert failure["code"] == "JobStartFailed", failure
    assert f"datastore '{other_datastore}' not found" in failure["message"], failure
