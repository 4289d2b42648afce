"""Native mounts: a cluster with `nativeMounts: true` whose nodes have rclone and FUSE mount the Blob
container itself (a real `rclone mount` of a real Azurite container), instead of getting a copy.

What a job writes under the mount is in the container when the job ends; the job's own mounts are
unmounted then, the cluster's when its nodes go, and removing a node never deletes what the
container holds.
"""

from __future__ import annotations

import os
import shutil

import pytest

from batchai_jupyter.storage.native_mounts import (
    blob_native_mount,
    mount_natively,
    mount_points_under,
    run_local_script,
    unmount_under_script,
)
from helpers.api import execution_log, make_cluster, read_log, stdout_text, wait_job
from helpers.azurite_server import Azurite, blob_datastore
from helpers.samba_server import Samba
from helpers.tools import require_tool
from helpers.waits import wait_for

SCRIPT = r"""
import os, sys
mounts = open("/proc/self/mounts").read()
for root in ("AZ_BATCHAI_MOUNT_ROOT", "AZ_BATCHAI_JOB_MOUNT_ROOT"):
    path = os.path.join(os.environ[root], "data")
    print(root, "fuse" if f" {path} fuse.rclone " in mounts else "not mounted", flush=True)
node = os.environ["RANK"]
print(open(os.path.join(os.environ["AZ_BATCHAI_MOUNT_ROOT"], "data", "dataset", "input.txt")).read().strip())
with open(os.path.join(os.environ["AZ_BATCHAI_JOB_MOUNT_ROOT"], "data", "models", f"model-{node}.bin"), "wb") as out:
    out.write(os.urandom(3 * 1024 * 1024))
with open(os.path.join(os.environ["AZ_BATCHAI_JOB_MOUNT_ROOT"], "data", "models", f"log-{node}.txt"), "a") as log:
    log.write("step 1\n")
with open(os.path.join(os.environ["AZ_BATCHAI_JOB_MOUNT_ROOT"], "data", "models", f"log-{node}.txt"), "a") as log:
    log.write("step 2\n")
"""


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    require_tool("rclone", "install it with `apt-get install rclone fuse3`")
    require_tool("fusermount3", "install it with `apt-get install fuse3`")
    assert os.path.exists("/dev/fuse"), "native mounts need /dev/fuse"
    server = Azurite(str(tmp_path_factory.mktemp("azurite"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service_home(shared_service, azurite):
    """The shared service's home; what is still mounted under it is unmounted before Azurite stops."""
    yield shared_service.home
    run_local_script(unmount_under_script(shared_service.home), timeout=60)


@pytest.fixture
def node_dir(tmp_path, azurite):
    """A scratch node directory, unmounted at the end even when a test fails."""
    yield tmp_path / "node"
    run_local_script(unmount_under_script(str(node_dir)), timeout=60)


def _register(client, tmp_path, azurite, container: str):
    scratch = blob_datastore(str(tmp_path / "scratch"), container, connection_string=azurite.connection_string)
    scratch.create_container()
    client.request(
        "PUT",
        f"workspaces/default/datastores/{container}",
        json_body={"kind": "blob", "containerName": container, "connectionString": azurite.connection_string},
    )
    return scratch


def _volume(container: str) -> dict:
    return {
        "azureBlobFileSystems": [
            {"accountName": "devstoreaccount1", "containerName": container, "relativeMountPath": "data"}
        ]
    }


def test_a_two_node_job_reads_and_writes_the_container_through_real_mounts(
    service_home, shared_client, unique, tmp_path, azurite
):
    container = unique("native")
    scratch = _register(shared_client, tmp_path, azurite, container)
    scratch.put_bytes("dataset/input.txt", b"read through FUSE\n")
    cluster = unique("fuse")
    make_cluster(shared_client, cluster, nodes=2, nativeMounts=True, nodeSetup={"mountVolumes": _volume(container)})
    assert shared_client.get(shared_client.cluster_path("default", cluster))["properties"]["nativeMounts"] is True
    (tmp_path / "train.py").write_text(SCRIPT)
    job = unique("job")
    shared_client.create_job(
        "default",
        "default",
        {
            "properties": {
                "nodeCount": 2,
                "mountVolumes": _volume(container),
                "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/data",
                "jobPreparation": {"commandLine": "mkdir -p $AZ_BATCHAI_JOB_MOUNT_ROOT/data/models"},
                "pyTorchSettings": {"pythonScriptFilePath": str(tmp_path / "train.py"), "communicationBackend": "gloo"},
            }
        },
        job,
        cluster=cluster,
    )
    done = wait_job(shared_client, job)
    if done["executionState"] != "succeeded":
        pytest.fail(f"{done['properties'].get('executionInfo')}\n{read_log(shared_client, job, 'stderr.txt')}")
    stdout = stdout_text(shared_client, job)
    assert stdout.count("AZ_BATCHAI_MOUNT_ROOT fuse") == 2 and stdout.count("AZ_BATCHAI_JOB_MOUNT_ROOT fuse") == 2
    assert stdout.count("read through FUSE") == 2
    assert "mounted rclone" in execution_log(shared_client, job)

    # Everything the job closed is in the container, without any copying by the service.
    files = {name: size for name, size, _sha in scratch.remote_files("models")}
    assert files == {
        "models/model-0.bin": 3 << 20,
        "models/model-1.bin": 3 << 20,
        "models/log-0.txt": 14,
        "models/log-1.txt": 14,
    }, files
    assert scratch.read("models/log-1.txt") == b"step 1\nstep 2\n"
    home = service_home
    # The job's mounts are gone with the job; the cluster's stay for its next jobs.
    live = mount_points_under(home)
    assert live and all(point.endswith("/mounts/data") for point in live) and len(live) == 2, live

    # The job's logs are in the share too, where its stdOutErrPathPrefix (into the job's mount) put them.
    blobs = scratch.remote_files("")
    segment = shared_client.job("default", "default", job)["jobOutputDirectoryPathSegment"]
    assert f"{segment}/stdouterr/stdout-0.txt" in {name for name, _size, _sha in blobs}

    shared_client.request("DELETE", shared_client.cluster_path("default", cluster))
    wait_for(lambda: not mount_points_under(home), "the cluster's mounts to be unmounted", timeout=60)
    # Removing the nodes removed no blob.
    assert scratch.remote_files("") == blobs


def test_a_node_without_the_tool_gets_a_copy_and_a_wrong_key_is_a_clear_error(tmp_path, node_dir, azurite):
    container = "fallback"
    scratch = blob_datastore(str(tmp_path / "scratch"), container, connection_string=azurite.connection_string)
    scratch.create_container()
    url = scratch.container_url(60)
    native = blob_native_mount(container, url)
    # A node with bash and coreutils but no rclone.
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("bash", "mkdir", "rm", "grep", "sed", "tail", "head", "mountpoint", "ls"):
        os.symlink(shutil.which(name), tools / name)

    def without_rclone(script, stdin):
        return run_local_script(f"export PATH={tools}\n{script}", stdin)

    mounted, note = mount_natively(without_rclone, native, str(node_dir / "mounts" / "data"))
    assert not mounted and "no rclone" in note and "copy" in note

    wrong = blob_native_mount(container, url.replace("sig=", "sig=AAAA"))
    with pytest.raises(Exception) as failure:
        mount_natively(run_local_script, wrong, str(node_dir / "mounts" / "wrong"))
    message = str(failure.value)
    assert "AuthorizationFailure" in message and "sig=" not in message and url.split("?")[1] not in message
    assert not mount_points_under(str(node_dir))


def test_unmounting_waits_for_the_files_still_to_upload(tmp_path, node_dir, azurite):
    container = "unmount"
    scratch = blob_datastore(str(tmp_path / "scratch"), container, connection_string=azurite.connection_string)
    scratch.create_container()
    path = str(node_dir / "mounts" / "data")
    mounted, _ = mount_natively(run_local_script, blob_native_mount(container, scratch.container_url(60)), path)
    assert mounted
    payload = os.urandom(64 << 20)
    with open(os.path.join(path, "big.bin"), "wb") as handle:
        handle.write(payload)
    # Unmounted at once after the close: the unmount waits for the upload rather than dropping it.
    code, output = run_local_script(unmount_under_script(str(node_dir)))
    assert code == 0, output
    assert not mount_points_under(str(node_dir))
    assert scratch.read("big.bin") == payload


@pytest.fixture(scope="module")
def samba(tmp_path_factory):
    server = Samba(str(tmp_path_factory.mktemp("samba")), "models", "myaccount", "share-key-1").start()
    yield server
    server.stop()


def test_a_file_share_is_mounted_over_smb(service_home, shared_client, unique, samba):
    """azureFileShares on a nativeMounts cluster: the share of a real Samba server, mounted on the node
    (the kernel's CIFS client where it has one, here rclone over SMB); the key comes from the job.json."""
    with open(os.path.join(samba.path, "input.txt"), "w") as handle:
        handle.write("on the share\n")
    cluster = unique("smb")
    make_cluster(shared_client, cluster, nodes=1, nativeMounts=True)
    job = unique("job")
    share = {
        "accountName": samba.user,
        "azureFileUrl": f"https://127.0.0.1:{samba.port}/{samba.share}",
        "credentials": {"accountKey": samba.password},
        "relativeMountPath": "afs",
    }
    shared_client.create_job(
        "default",
        "default",
        {
            "properties": {
                "nodeCount": 1,
                "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs",
                "mountVolumes": {"azureFileShares": [share]},
                "customToolkitSettings": {
                    "commandLine": (
                        "grep -c ' fuse.rclone ' /proc/self/mounts; cat $AZ_BATCHAI_JOB_MOUNT_ROOT/afs/input.txt && "
                        "mkdir -p $AZ_BATCHAI_JOB_MOUNT_ROOT/afs/out && "
                        "echo trained > $AZ_BATCHAI_JOB_MOUNT_ROOT/afs/out/m.txt"
                    )
                },
            }
        },
        job,
        cluster=cluster,
    )
    done = wait_job(shared_client, job)
    assert done["executionState"] == "succeeded", read_log(shared_client, job, "stderr.txt")
    assert "on the share" in read_log(shared_client, job, "stdout.txt")
    log = execution_log(shared_client, job)
    assert "SMB share 'models'" in log and "mounted rclone" in log and samba.password not in log
    # Written on the server's disk, and the job's mount is gone.
    with open(os.path.join(samba.path, "out", "m.txt")) as handle:
        assert handle.read() == "trained\n"
    assert not [p for p in mount_points_under(service_home) if "/jobs/" in p]
    shown = shared_client.get(f"workspaces/default/experiments/default/jobs/{job}")
    assert samba.password not in str(shown)
