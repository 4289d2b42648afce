"""The Blob datastore against a real Azurite: transfers, ranged reads, links and clear errors."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
import urllib.error
import urllib.request

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from batchai_jupyter.core import uploads
from batchai_jupyter.errors import BatchAIError
from batchai_jupyter.storage.local import LocalDatastore
from helpers.azurite_server import ACCOUNT, KEY, blob_datastore


@pytest.fixture
def store(azurite, tmp_path, unique):
    datastore = blob_datastore(str(tmp_path / "home"), unique("data"), connection_string=azurite.connection_string)
    datastore.create_container()
    return datastore


def _random_file(path, megabytes: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        for _ in range(megabytes):
            block = os.urandom(1 << 20)
            digest.update(block)
            handle.write(block)
    return digest.hexdigest()


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_200mb_round_trip_is_bit_exact_with_progress(store, tmp_path):
    source = tmp_path / "dataset.bin"
    expected = _random_file(source, 200)
    sent, received = [], []
    assert (
        store.upload_file(str(source), "datasets/big/dataset.bin", progress=lambda d, t: sent.append((d, t)))
        == 200 << 20
    )
    target = tmp_path / "back" / "dataset.bin"
    store.download_file("datasets/big/dataset.bin", str(target), progress=lambda d, t: received.append((d, t)))
    assert _sha256(target) == expected
    assert sent[-1] == (200 << 20, 200 << 20) and len(sent) > 1
    assert received[-1][0] == 200 << 20
    assert [e.name for e in store.list("datasets/big")] == ["dataset.bin"]
    assert store.transfers()["bytesSent"] == 200 << 20 and store.transfers()["bytesReceived"] == 200 << 20


def test_listing_ranged_reads_and_delete(store):
    store.put_bytes("exp/job/stdouterr/stdout.txt", b"0123456789")
    store.put_bytes("exp/job/outputs/model/weights.bin", b"w" * 100)
    assert [(e.name, e.file_type) for e in store.list("exp/job")] == [
        ("outputs", "directory"),
        ("stdouterr", "directory"),
    ]
    assert store.read("exp/job/stdouterr/stdout.txt", 3, 4) == b"3456"
    assert store.read("exp/job/stdouterr/stdout.txt", 7) == b"789"
    assert store.read("exp/job/stdouterr/stdout.txt", 10) == b""
    assert store.exists("exp/job") and not store.exists("exp/nothing")
    with pytest.raises(BatchAIError) as missing:
        store.read("exp/job/stdouterr/nope.txt")
    assert missing.value.code == "FileNotFound" and missing.value.status == 404
    with pytest.raises(BatchAIError):
        store.read("../escape.txt")
    assert store.delete("exp/job") == 2 and store.list("exp") == []


def test_sas_link_works_with_plain_urllib_and_expires(azurite, tmp_path, unique):
    store = blob_datastore(
        str(tmp_path), unique("links"), account_name=ACCOUNT, account_key=KEY, endpoint=azurite.endpoint
    )
    store.create_container()
    store.put_bytes("models/model.txt", b"trained weights")
    with urllib.request.urlopen(store.download_url("models/model.txt")) as response:
        assert response.read() == b"trained weights"
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(store.download_url("models/model.txt", expiry_minutes=-5))
    assert expired.value.code == 403


def test_wrong_key_missing_container_and_expired_sas_are_clear(azurite, store, tmp_path):
    wrong = blob_datastore(
        str(tmp_path),
        store.settings.container,
        account_name=ACCOUNT,
        account_key="d3Jvbmcta2V5" * 8,
        endpoint=azurite.endpoint,
    )
    with pytest.raises(BatchAIError) as refused:
        wrong.check()
    assert refused.value.code == "StorageAuthenticationFailed" and "account key" in refused.value.message
    assert "d3Jvbmcta2V5" not in refused.value.message

    absent = blob_datastore(str(tmp_path), "no-such-container", connection_string=azurite.connection_string)
    with pytest.raises(BatchAIError) as missing:
        absent.check()
    assert missing.value.code == "ContainerNotFound" and "no-such-container" in missing.value.message

    expired_token = generate_container_sas(
        ACCOUNT,
        store.settings.container,
        account_key=KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1),
    )
    expired = blob_datastore(
        str(tmp_path),
        store.settings.container,
        account_name=ACCOUNT,
        sas_token=expired_token,
        endpoint=azurite.endpoint,
    )
    with pytest.raises(BatchAIError) as stale:
        expired.check()
    assert stale.value.code == "StorageAuthenticationFailed" and "expiry" in stale.value.message
    assert expired_token.split("sig=")[1][:10] not in stale.value.message


def test_chunked_client_upload_commits_only_on_the_final_chunk(store, tmp_path):
    path = "datasets/abc123/train.csv"
    assert uploads.missing(store, [{"path": path, "size": 12}]) == [path]
    uploads.write(store, path, b"a,b\n1,2\n", 0, final=False)
    assert not store.exists(path)  # half-sent: no blob yet
    with pytest.raises(BatchAIError) as gap:
        uploads.write(store, path, b"3,4\n", 99, final=True)
    assert gap.value.code == "UploadOffsetMismatch"
    uploads.write(store, path, b"3,4\n", 8, final=True, sha256=hashlib.sha256(b"a,b\n1,2\n3,4\n").hexdigest())
    assert store.read(path) == b"a,b\n1,2\n3,4\n"
    before = store.transfers()["bytesSkipped"]
    assert uploads.missing(store, [{"path": path, "size": 12}]) == []
    assert uploads.missing(store, [{"path": path, "size": 12, "sha256": "0" * 64}]) == [path]  # other content
    right = hashlib.sha256(b"a,b\n1,2\n3,4\n").hexdigest()
    assert uploads.missing(store, [{"path": path, "size": 12, "sha256": right}]) == []
    before += 12
    assert store.transfers()["bytesSkipped"] == before + 12
    # The same check on a local datastore hashes the file it holds.
    local = LocalDatastore(str(tmp_path / "local"))
    uploads.write(local, "d/x.txt", b"abc")
    assert uploads.missing(
        local,
        [
            {"path": "d/x.txt", "size": 3, "sha256": hashlib.sha256(b"abc").hexdigest()},
            {"path": "d/x.txt", "size": 3, "sha256": hashlib.sha256(b"abd").hexdigest()},
        ],
    ) == ["d/x.txt"]


def test_storage_stopped_mid_upload_is_a_clear_error_and_a_retry_completes(make_azurite, tmp_path, unique):
    server = make_azurite(persistent=True)
    store = blob_datastore(
        str(tmp_path / "home"), unique("flaky"), connection_string=server.connection_string, retries=1
    )
    store.create_container()
    source = tmp_path / "big.bin"
    expected = _random_file(source, 96)  # over the SDK's single-put size: block upload
    stopped = threading.Event()

    def stop_half_way(done: int, total: int) -> None:
        if done >= total // 3 and not stopped.is_set():
            stopped.set()
            server.stop(graceful=True)

    with pytest.raises(BatchAIError) as cut:
        store.upload_file(str(source), "data/big.bin", progress=stop_half_way, concurrency=2)
    assert stopped.is_set()
    assert cut.value.code == "StorageUnreachable" and "retry" in cut.value.message
    server.start()
    assert not store.exists("data/big.bin")  # nothing half-uploaded is ever a blob
    store.upload_file(str(source), "data/big.bin")
    store.download_file("data/big.bin", str(tmp_path / "back.bin"))
    assert _sha256(tmp_path / "back.bin") == expected
