"""Blob datastores through the REST API of a real `batchai serve`, against a real Azurite."""

from __future__ import annotations

import urllib.request

import pytest

from batchai_jupyter.errors import BatchAIError
from helpers.azurite_server import KEY, blob_datastore


def _container(azurite, tmp_path, name: str):
    store = blob_datastore(str(tmp_path / "scratch"), name, connection_string=azurite.connection_string)
    store.create_container()
    return store


def test_create_show_list_never_reveal_the_key(shared_service, shared_client, azurite, tmp_path, unique):
    container = unique("api")
    _container(azurite, tmp_path, container)
    created = shared_client.request(
        "PUT",
        f"workspaces/default/datastores/{container}",
        json_body={"kind": "blob", "containerName": container, "connectionString": azurite.connection_string},
    )
    assert created["kind"] == "blob" and created["containerName"] == container
    assert created["authentication"] == "connectionString" and created["accountName"] == "devstoreaccount1"
    assert created["transfers"]["bytesSent"] == 0
    shown = shared_client.get(f"workspaces/default/datastores/{container}")
    listed = shared_client.list("workspaces/default/datastores")
    assert container in [d["name"] for d in listed]
    for text in (repr(created), repr(shown), repr(listed), shared_service.log()):
        assert KEY not in text and KEY[:20] not in text


def test_wrong_key_and_missing_container_are_refused_clearly(shared_client, azurite, unique):
    name = unique("bad")
    with pytest.raises(BatchAIError) as wrong:
        shared_client.request(
            "PUT",
            f"workspaces/default/datastores/{name}",
            json_body={
                "kind": "blob",
                "containerName": "anything",
                "accountName": "devstoreaccount1",
                "accountKey": "bm90LXRoZS1rZXk=" * 5,
                "endpoint": azurite.endpoint,
            },
        )
    assert wrong.value.code == "StorageAuthenticationFailed" and wrong.value.status == 400
    with pytest.raises(BatchAIError) as missing:
        shared_client.request(
            "PUT",
            f"workspaces/default/datastores/{name}",
            json_body={"kind": "blob", "containerName": "never-created", "connectionString": azurite.connection_string},
        )
    assert missing.value.code == "ContainerNotFound" and "never-created" in missing.value.message
    with pytest.raises(BatchAIError) as bad:
        shared_client.request(
            "PUT",
            f"workspaces/default/datastores/{name}",
            json_body={"kind": "blob", "containerName": "Bad_Name", "connectionString": azurite.connection_string},
        )
    assert bad.value.code == "InvalidDatastore" and "containerName" in bad.value.message
    assert name not in [d["name"] for d in shared_client.list("workspaces/default/datastores")]


def test_upload_ls_and_sas_download_link(shared_client, azurite, tmp_path, unique):
    container = unique("files")
    _container(azurite, tmp_path, container)
    shared_client.request(
        "PUT",
        f"workspaces/default/datastores/{container}",
        json_body={
            "kind": "blob",
            "containerName": container,
            "connectionString": azurite.connection_string,
            "linkExpiryInMinutes": 5,
        },
    )
    base = f"workspaces/default/datastores/{container}"
    response = shared_client.session.put(
        f"{shared_client.url}batchai/api/v1/{base}/files/content", params={"path": "data/a.txt"}, data=b"hello blob"
    )
    assert response.status_code == 200, response.text
    entries = shared_client.list(f"{base}/files", path="data")
    assert [(e["name"], e["contentLength"]) for e in entries] == [("a.txt", 10)]
    with urllib.request.urlopen(entries[0]["downloadUrl"]) as link:  # no token: the SAS alone
        assert link.read() == b"hello blob"
    content = shared_client.request(
        "GET", f"{base}/files/content", params={"path": "data/a.txt", "offset": 6}, raw=True
    )
    assert content.content == b"blob"
