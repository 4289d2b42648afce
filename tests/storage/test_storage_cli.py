"""`batchai datastore ...` and `batchai file-server ...` as a user runs them, against Azurite."""

from __future__ import annotations

import json
import os

from helpers.azurite_server import ACCOUNT, KEY, blob_datastore
from helpers.cli import cli, ok, one_line_error


def test_datastore_verbs_with_the_key_from_the_environment(shared_service, azurite, tmp_path, unique):
    env = {**shared_service.env(), "AZURE_BATCHAI_STORAGE_KEY": KEY}
    name = unique("cli")
    created = json.loads(
        ok(
            cli(
                shared_service,
                "datastore",
                "create",
                "-n",
                name,
                "--container",
                name,
                "--account-name",
                ACCOUNT,
                "--endpoint",
                azurite.endpoint,
                "--create-container",
                "--link-expiry",
                "10",
                env=env,
            )
        )
    )
    assert created["authentication"] == "accountKey" and created["linkExpiryInMinutes"] == 10
    folder = tmp_path / "dataset"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.bin").write_bytes(os.urandom(20 * 1024 * 1024))  # more than one 16 MB chunk
    (folder / "labels.txt").write_text("cat\n")
    first = json.loads(ok(cli(shared_service, "datastore", "upload", "-n", name, "-s", str(folder), "-p", "data")))
    assert first["bytesSent"] == 20 * 1024 * 1024 + 4 and first["bytesSkipped"] == 0
    (folder / "labels.txt").write_text("dog\n")  # same size, new content: sent again
    again = json.loads(ok(cli(shared_service, "datastore", "upload", "-n", name, "-s", str(folder), "-p", "data")))
    assert again["bytesSent"] == 4 and again["bytesSkipped"] == 20 * 1024 * 1024 and again["filesSent"] == 1
    table = ok(cli(shared_service, "datastore", "ls", "-n", name, "-p", "data/images"))
    assert "a.bin" in table and str(20 * 1024 * 1024) in table
    ok(cli(shared_service, "datastore", "download", "-n", name, "-p", "data/images/a.bin", "-d", str(tmp_path)))
    assert (tmp_path / "a.bin").read_bytes() == (folder / "images" / "a.bin").read_bytes()
    shown = ok(cli(shared_service, "datastore", "show", "-n", name))
    transfers = json.loads(shown)["transfers"]
    assert transfers["bytesSent"] == 20 * 1024 * 1024 + 8 and transfers["bytesSkipped"] == 20 * 1024 * 1024
    listing = ok(cli(shared_service, "datastore", "list"))
    assert name in listing and "blob" in listing
    for text in (shown, listing, json.dumps(created)):
        assert KEY not in text
    ok(cli(shared_service, "datastore", "delete", "-n", name, "-y"))
    assert name not in ok(cli(shared_service, "datastore", "list"))
    # The blobs themselves stay: the datastore was only forgotten.
    direct = blob_datastore(str(tmp_path / "direct"), name, connection_string=azurite.connection_string)
    assert direct.read("data/labels.txt") == b"dog\n"


def test_datastore_errors_are_one_line(shared_service, azurite, unique):
    one_line_error(
        cli(
            shared_service,
            "datastore",
            "create",
            "-n",
            unique("x"),
            "--container",
            "nope-missing",
            "--connection-string",
            azurite.connection_string,
        ),
        "container does not exist",
    )
    one_line_error(
        cli(
            shared_service,
            "datastore",
            "create",
            "-n",
            unique("x"),
            "--container",
            "abc",
            env={**shared_service.env(), "AZURE_STORAGE_CONNECTION_STRING": ""},
        ),
        "--account-name with --account-key",
    )
    one_line_error(cli(shared_service, "datastore", "ls", "-n", "no-such-store"), "not found")
    one_line_error(cli(shared_service, "datastore", "delete", "-n", "default", "-y"), "cannot be deleted")


def test_file_server_registration_and_placeholders_in_job_json(shared_service, shared_client, tmp_path, unique):
    export = tmp_path / "export"
    (export / "data").mkdir(parents=True)
    (export / "data" / "x.txt").write_text("shared\n")
    server = unique("nfs")
    ok(cli(shared_service, "file-server", "create", "-n", server, "--path", str(export)))
    assert server in ok(cli(shared_service, "file-server", "list"))
    cluster = unique("fs")
    from helpers.api import make_cluster, read_log, wait_job

    make_cluster(shared_client, cluster, nodes=1)
    job_json = tmp_path / "job.json"
    job_json.write_text(
        json.dumps(
            {
                "properties": {
                    "nodeCount": 1,
                    "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs",
                    "mountVolumes": {
                        "fileServers": [
                            {"fileServer": {"id": f"/sub/fileservers/{server}"}, "relativeMountPath": "nfs"}
                        ],
                        "azureFileShares": [
                            {
                                "accountName": "<AZURE_BATCHAI_STORAGE_ACCOUNT>",
                                "azureFileUrl": "https://<AZURE_BATCHAI_STORAGE_ACCOUNT>.file.core.windows.net/"
                                + unique("share"),
                                "credentials": {"accountKey": "<AZURE_BATCHAI_STORAGE_KEY>"},
                                "relativeMountPath": "afs",
                            }
                        ],
                    },
                    "customToolkitSettings": {"commandLine": "cat $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs/data/x.txt"},
                }
            }
        )
    )
    env = {
        **shared_service.env(),
        "AZURE_BATCHAI_STORAGE_ACCOUNT": "myaccount",
        "AZURE_BATCHAI_STORAGE_KEY": "c2VjcmV0LWtleQ==",
    }
    job = unique("job")
    ok(cli(shared_service, "job", "create", "-n", job, "-c", cluster, "-f", str(job_json), env=env))
    assert wait_job(shared_client, job)["executionState"] == "succeeded"
    assert read_log(shared_client, job, "stdout.txt") == "shared\n"
    shown = ok(cli(shared_service, "job", "show", "-n", job))
    assert "myaccount" in shown and "c2VjcmV0LWtleQ==" not in shown
