"""mountVolumes that no job could mount are refused at submit, before anything is made from them
(a container named ../../../../etc once became a local datastore named ------------etc at job start)."""

from __future__ import annotations

import pytest

BAD_MOUNTS = {
    "mountVolumes.azureBlobFileSystems[0].containerName": {
        "azureBlobFileSystems": [{"accountName": "a", "containerName": "../../../../etc", "relativeMountPath": "b"}]
    },
    "mountVolumes.azureBlobFileSystems[0].relativeMountPath": {
        "azureBlobFileSystems": [{"containerName": "data", "relativeMountPath": "../../outside"}]
    },
    "mountVolumes.azureFileShares[0].azureFileUrl": {
        "azureFileShares": [{"azureFileUrl": "https://a.file.core.windows.net/..", "relativeMountPath": "s"}]
    },
    "mountVolumes.azureFileShares[1].relativeMountPath": {
        "azureFileShares": [
            {"azureFileUrl": "https://a.file.core.windows.net/one", "relativeMountPath": "same"},
            {"azureFileUrl": "https://a.file.core.windows.net/two", "relativeMountPath": "same/"},
        ]
    },
    "mountVolumes.fileServers[0].fileServer": {"fileServers": [{"relativeMountPath": "nfs"}]},
    "mountVolumes.fileServers[0].sourceDirectory": {
        "fileServers": [{"fileServer": {"id": "fs"}, "sourceDirectory": "../../../etc", "relativeMountPath": "n"}]
    },
    "mountVolumes.unmanagedFileSystems[0].mountCommand": {
        "unmanagedFileSystems": [{"mountCommand": "", "relativeMountPath": "u"}]
    },
    "mountVolumes.unmanagedFileSystems[0].relativeMountPath": {"unmanagedFileSystems": [{"mountCommand": "true"}]},
    "mountVolumes.azureBlobFileSystems": {"azureBlobFileSystems": {"containerName": "data"}},
    "mountVolumes.azureBlobFileSystems[0]": {"azureBlobFileSystems": ["data"]},
    "mountVolumes.azureBlobFileSystems[0].credentials": {
        "azureBlobFileSystems": [{"containerName": "data", "relativeMountPath": "b", "credentials": "the-key"}]
    },
}


@pytest.fixture(scope="module")
def idle_cluster(shared_service):
    from batchai_jupyter.client import Client

    Client(shared_service.url, shared_service.env()["BATCHAI_TOKEN"]).create_cluster(
        "default", {"backend": "local", "nodeCount": 0}, "mounts-idle"
    )
    return "mounts-idle"


@pytest.mark.parametrize("where", list(BAD_MOUNTS))
def test_mount_volumes_no_job_could_mount_are_refused_at_submit(api, expect_refused, idle_cluster, unique, where):
    datastores = api("GET", "workspaces/default/datastores").json()["value"]
    name = unique("mounts")
    job = {"cluster": idle_cluster, "toolkit": "custom", "commandLine": "true", "mountVolumes": BAD_MOUNTS[where]}
    response = api("PUT", f"workspaces/default/experiments/default/jobs/{name}", json=job)
    expect_refused(response, 400, where)
    assert "the-key" not in response.text
    cluster = {"backend": "local", "nodeCount": 0, "mountVolumes": BAD_MOUNTS[where]}
    expect_refused(api("PUT", f"workspaces/default/clusters/{name}", json=cluster), 400, where)
    assert api("GET", f"workspaces/default/experiments/default/jobs/{name}").status_code == 404
    assert api("GET", f"workspaces/default/clusters/{name}").status_code == 404
    assert api("GET", "workspaces/default/datastores").json()["value"] == datastores


def test_mount_volumes_every_job_can_mount_are_accepted(api, idle_cluster, unique):
    mounts = {
        "azureBlobFileSystems": [
            {
                "accountName": "acct",
                "containerName": "data",
                "relativeMountPath": "b",
                "credentials": {"accountKey": "k"},
            }
        ],
        "azureFileShares": [{"azureFileUrl": "https://acct.file.core.windows.net/share", "relativeMountPath": "a"}],
        "fileServers": [{"fileServer": {"id": "fs"}, "sourceDirectory": "/sub", "relativeMountPath": "n"}],
        "unmanagedFileSystems": [{"mountCommand": "mount -t tmpfs none", "relativeMountPath": "u"}],
    }
    name = unique("mounts-ok")
    job = {"cluster": idle_cluster, "toolkit": "custom", "commandLine": "true", "mountVolumes": mounts}
    response = api("PUT", f"workspaces/default/experiments/default/jobs/{name}", json=job)
    assert response.status_code == 201, response.text
    shown = response.json()["properties"]["mountVolumes"]["azureBlobFileSystems"][0]
    assert shown["credentials"]["accountKey"] == "***"


def test_a_cell_job_with_a_bad_data_name_uploads_nothing(shared_client, tmp_path, idle_cluster):
    from batchai_jupyter.errors import BatchAIError
    from batchai_jupyter.notebook.submit import CellJobOptions, submit_cell
    from batchai_jupyter.notebook.workspace import Workspace

    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "payload.txt").write_text("x" * 1000)

    def uploaded() -> list:
        return [
            shared_client.list("workspaces/default/datastores/default/files", path=folder)
            for folder in (".", ".batchai", ".batchai/datasets", ".batchai/packages")
        ]

    before = uploaded()
    for bad in ("../../evil", "1st", "a-b", "x/y"):
        options = CellJobOptions(cluster=idle_cluster, data=[f"{bad}={evil}"])
        with pytest.raises(BatchAIError) as refused:
            submit_cell(
                Workspace(client=shared_client), "print(1)", options, {}, str(tmp_path), announce=lambda _: None
            )
        assert "is not a dataset name" in refused.value.message and repr(bad) in refused.value.message
    assert uploaded() == before
