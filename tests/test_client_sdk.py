"""The client SDK against a real `batchai serve`: quoted names, the uploader, the follower, the event stream."""

from __future__ import annotations

import threading
import time

import pytest

from batchai_jupyter.client import Client
from batchai_jupyter.client.follow import follow_job
from batchai_jupyter.client.uploads import UploadFile, files_of, upload_files
from batchai_jupyter.errors import BatchAIError


@pytest.fixture
def sdk(shared_service) -> Client:
    client = Client(shared_service.url, shared_service.env()["BATCHAI_TOKEN"])
    yield client
    client.close()


def test_a_name_is_one_path_segment_whatever_it_holds(sdk):
    # Unquoted, "default/experiments" would have listed the experiments of workspace "default".
    with pytest.raises(BatchAIError) as refused:
        sdk.workspace("default/experiments")
    assert 400 <= refused.value.status < 500 and "default/experiments" in refused.value.message
    with pytest.raises(BatchAIError) as refused:
        sdk.job("default", "default", "x?state=queued")
    assert 400 <= refused.value.status < 500


def test_the_uploader_reports_progress_and_sends_only_what_is_not_held(sdk, tmp_path, unique):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.bin").write_bytes(b"a" * 1000)
    (tmp_path / "data" / "b.txt").write_bytes(b"bee\n")
    folder = unique("sdk-upload")
    seen: list[tuple[int, int]] = []
    first = upload_files(
        sdk,
        "default",
        "default",
        files_of(str(tmp_path / "data"), "data"),
        folder,
        compare_hashes=True,
        progress=lambda sent, total: seen.append((sent, total)),
    )
    assert (first.bytes_sent, sorted(first.files_sent)) == (1004, ["a.bin", "b.txt"])
    assert seen[0] == (0, 1004) and seen[-1] == (1004, 1004) and len(seen) == 3
    assert sdk.read_datastore_file("default", "default", f"{folder}/b.txt") == b"bee\n"
    # The same bytes again: nothing is sent. Same size, other bytes: compared by SHA-256, sent again.
    again = upload_files(
        sdk, "default", "default", files_of(str(tmp_path / "data"), "data"), folder, compare_hashes=True
    )
    assert (again.bytes_sent, again.files_sent) == (0, [])
    changed = upload_files(sdk, "default", "default", [UploadFile("b.txt", data=b"bez\n")], folder, compare_hashes=True)
    assert changed.files_sent == ["b.txt"]
    assert sdk.read_datastore_file("default", "default", f"{folder}/b.txt", offset=2) == b"z\n"


def test_the_follower_and_the_event_stream_see_a_job_through(sdk, unique):
    name = unique("followed")
    cluster = unique("sdk")
    sdk.create_cluster("default", {"backend": "local", "nodeCount": 1}, cluster)
    stream = sdk.events(type="job", name=name)
    events: list[dict] = []
    reader = threading.Thread(target=lambda: events.extend(stream))
    reader.start()
    sdk.create_job(
        "default",
        "default",
        {
            "cluster": cluster,
            "customToolkitSettings": {"commandLine": "for i in 1 2 3; do echo line $i; echo oops >&2; sleep 0.2; done"},
        },
        name,
    )
    texts: dict[str, str] = {}
    states: list[str] = []
    job = follow_job(
        sdk,
        "default",
        "default",
        name,
        ["stdout.txt", "stderr.txt"],
        lambda path, text: texts.__setitem__(path, texts.get(path, "") + text),
        text=True,
        on_state=lambda info: states.append(info["executionState"]),
        timeout=120,
    )
    assert job["executionState"] == "succeeded" and states[-1] == "succeeded"
    assert texts == {"stdout.txt": "line 1\nline 2\nline 3\n", "stderr.txt": "oops\n" * 3}
    deadline = time.monotonic() + 30
    while "succeeded" not in [e["state"] for e in events] and time.monotonic() < deadline:
        time.sleep(0.05)  # the event may trail the state the follower read
    stream.close()  # from this thread, while the reader is blocked on the stream
    reader.join(10)
    assert not reader.is_alive()
    assert [e["state"] for e in events][-1] == "succeeded" and {e["name"] for e in events} == {name}
