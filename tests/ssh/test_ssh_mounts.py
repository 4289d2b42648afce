"""Batch AI mountVolumes on the SSH backend, on real sshd hosts: an old job.json whose data is on an
Azure file share runs unchanged. With no Azure here the shares are local directory datastores on the
service's machine, which the hosts cannot see: the backend stages each mount onto the hosts under the
node's mount root and collects what the job writes there back into the datastore."""

from __future__ import annotations

import os

import pytest

from helpers.api import read_log, wait_job
from helpers.azurite_server import ACCOUNT as AZURITE_ACCOUNT
from helpers.azurite_server import blob_datastore
from helpers.ssh import ssh_cluster_spec
from helpers.waits import wait_for

JOB_TIMEOUT = 180.0
ACCOUNT = "olddemo"

TRAIN_SCRIPT = """\
import os, socket, sys
rank = os.environ["RANK"]
mount = os.path.join(os.environ["AZ_BATCHAI_JOB_MOUNT_ROOT"], "afs")
with open(os.path.join(mount, "data", "dataset.csv")) as handle:
    rows = [line.strip().split(",") for line in handle if line.strip()]
total = sum(int(value) for _, value in rows[1:])
with open(os.path.join(os.environ["AZ_BATCHAI_MOUNT_ROOT"], "cfs", "settings.txt")) as handle:
    settings = handle.read().strip()
os.makedirs(os.path.join(mount, "results"), exist_ok=True)
with open(os.path.join(mount, "results", f"result-{rank}.txt"), "w") as handle:
    handle.write(f"rank {rank} total {total} settings {settings}\\n")
with open(os.path.join(os.environ["AZ_BATCHAI_OUTPUT_MODEL"], f"model-{rank}.txt"), "w") as handle:
    handle.write(f"weights {total * 2}\\n")
def local(address):  # binding works only to this host's own address
    try:
        with socket.socket() as probe:
            probe.bind((address, 0))
        return True
    except OSError:
        return False
with open(os.path.join(os.environ["AZ_BATCHAI_JOB_MOUNT_ROOT"], "scratch", "marker")) as handle:
    print("unmanaged:", handle.read().strip())
here = [a for a in os.environ["AZ_BATCH_HOST_LIST"].split(",") if local(a)]
print("rank", rank, "on", ",".join(here), "home visible:", os.path.exists(sys.argv[1]))
"""


def _url(share: str) -> str:
    return f"https://{ACCOUNT}.file.core.windows.net/{share}"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from helpers.service import ServiceProcess

    base = tmp_path_factory.mktemp("ssh-mounts-service")
    process = ServiceProcess(str(base / "home"), str(base / "runtime"))
    client = process.start()
    yield process, client
    process.stop()


def _share_dir(home: str, share: str) -> str:
    """Where a share with no datastore registered for it lives on the service's machine."""
    return os.path.join(home, "datastores", "default", share)


def test_batch_ai_mount_volumes_on_two_ssh_hosts(service, ssh_hosts):
    process, client = service
    home = process.home
    # The cluster's share: a file the node setup task reads, before the datastore is registered
    # (the first use registers the local directory datastore named after the share).
    cluster_share = _share_dir(home, "clustershare")
    os.makedirs(cluster_share)
    with open(os.path.join(cluster_share, "settings.txt"), "w") as handle:
        handle.write("lr=0.1\n")
    spec = ssh_cluster_spec(ssh_hosts)
    spec["nodeSetup"] = {
        "setupTask": {
            "commandLine": "cat $AZ_BATCHAI_MOUNT_ROOT/cfs/settings.txt && "
            "echo set up > $AZ_BATCHAI_MOUNT_ROOT/cfs/setup-$AZ_BATCHAI_NODE_NAME.txt"
        },
        "mountVolumes": {
            "azureFileShares": [
                {
                    "accountName": ACCOUNT,
                    "azureFileUrl": _url("clustershare"),
                    "credentials": {"accountKey": "not-used-here"},
                    "relativeMountPath": "cfs",
                }
            ]
        },
    }
    client.create_cluster("default", spec, "mnt")

    def ready():
        cluster = client.get(client.cluster_path("default", "mnt"))
        counts = cluster["nodeStateCounts"]
        if counts["unusableNodeCount"]:
            nodes = client.list(client.cluster_path("default", "mnt") + "/nodes")
            raise AssertionError(f"a node is unusable: {[n['errors'] for n in nodes]}")
        return cluster if counts["idleNodeCount"] == 2 else None

    wait_for(ready, "the SSH cluster's 2 nodes to finish their setup task", timeout=120)
    nodes = client.list(client.cluster_path("default", "mnt") + "/nodes")
    assert len(nodes) == 2, nodes
    for node in nodes:
        # The setup task saw the cluster-level mount on its host ...
        text = client.request(
            "GET",
            client.cluster_path("default", "mnt") + "/files/content",
            params={"path": f"stdout-setup-{node['nodeId']}.txt"},
            raw=True,
        ).content.decode()
        assert text.strip() == "lr=0.1", text
        # ... and what it wrote there came back into the share's datastore directory.
        written = os.path.join(cluster_share, f"setup-{node['nodeId']}.txt")
        assert os.path.isfile(written), (os.listdir(cluster_share), node)
        assert open(written).read() == "set up\n"

    # The job's share holds the dataset and the script, put there before the job (an upload).
    job_share = _share_dir(home, "jobshare")
    os.makedirs(os.path.join(job_share, "data"))
    with open(os.path.join(job_share, "data", "dataset.csv"), "w") as handle:
        handle.write("name,value\na,1\nb,2\nc,39\n")
    with open(os.path.join(job_share, "train.py"), "w") as handle:
        handle.write(TRAIN_SCRIPT)
    job_json = {
        "properties": {
            "nodeCount": 2,
            "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs",
            "mountVolumes": {
                "azureFileShares": [
                    {
                        "accountName": ACCOUNT,
                        "azureFileUrl": _url("jobshare"),
                        "credentials": {"accountKey": "not-used-here"},
                        "relativeMountPath": "afs",
                    }
                ],
                # run on each host with the mount path appended
                "unmanagedFileSystems": [
                    {"mountCommand": "sh -c 'hostname -I > \"$0/marker\"'", "relativeMountPath": "scratch"}
                ],
            },
            "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs"}],
            "pyTorchSettings": {
                "pythonScriptFilePath": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs/train.py",
                "commandLineArgs": home,
                "communicationBackend": "gloo",
            },
        }
    }
    client.create_job("default", "default", job_json, "trainmnt", cluster="mnt")
    job = wait_job(client, "trainmnt", timeout=JOB_TIMEOUT)
    logs = {
        entry["name"]: read_log(client, "trainmnt", entry["name"])
        for entry in client.list(
            client.job_path("default", "default", "trainmnt") + "/files", outputdirectoryid="stdouterr"
        )
        if entry["fileType"] == "file"
    }
    assert job["executionState"] == "succeeded", (job["executionInfo"], logs)
    # Both ranks ran on their own host, which does not see the service's files.
    outs = read_log(client, "trainmnt", "stdout-0.txt") + read_log(client, "trainmnt", "stdout-1.txt")
    assert outs.count("home visible: False") == 2, logs
    addresses = {h.address for h in ssh_hosts.hosts}
    assert {line.split()[3] for line in outs.splitlines() if line.startswith("rank")} == addresses, logs
    # The unmanaged file system's mount command ran on each host (its own address in the marker).
    marks = [line.split()[1:] for line in outs.splitlines() if line.startswith("unmanaged:")]
    assert len(marks) == 2 and {a for m in marks for a in m} & addresses == addresses, logs
    # What the job wrote under the mount is back in the share's datastore directory on this machine.
    for rank in (0, 1):
        result = os.path.join(job_share, "results", f"result-{rank}.txt")
        assert os.path.isfile(result), (sorted(os.listdir(job_share)), logs)
        assert open(result).read() == f"rank {rank} total 42 settings lr=0.1\n"
        assert read_log(client, "trainmnt", f"model-{rank}.txt", "MODEL") == "weights 84\n"
    # The dataset itself is untouched, and the share is reported as the local stand-in it is.
    assert open(os.path.join(job_share, "data", "dataset.csv")).read().endswith("c,39\n")
    stores = {d["name"]: d for d in client.list("workspaces/default/datastores")}
    assert stores["jobshare"]["kind"] == "local" and stores["clustershare"]["kind"] == "local", stores
    assert any(
        "local directory datastore 'jobshare'" in text for name, text in logs.items() if name.startswith("execution")
    ), logs


def test_a_failing_mount_command_on_a_host_fails_the_job_clearly(service, ssh_hosts):
    _, client = service
    spec = ssh_cluster_spec(ssh_hosts, [ssh_hosts.hosts[0]])
    client.create_cluster("default", spec, "mntbad")
    wait_for(
        lambda: client.get(client.cluster_path("default", "mntbad"))["nodeStateCounts"]["idleNodeCount"] == 1,
        "the SSH cluster's node",
        timeout=90,
    )
    client.create_job(
        "default",
        "default",
        {
            "properties": {
                "nodeCount": 1,
                "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/logs",
                "mountVolumes": {
                    "unmanagedFileSystems": [
                        {"mountCommand": "sh -c 'echo no such export >&2; exit 3'", "relativeMountPath": "g"}
                    ]
                },
                "customToolkitSettings": {"commandLine": "true"},
            }
        },
        "badmount",
        cluster="mntbad",
    )
    job = wait_job(client, "badmount", timeout=JOB_TIMEOUT)
    message = " ".join(e["message"] for e in job["executionInfo"]["errors"])
    assert job["executionState"] == "failed", job
    assert "exited with code 3" in message and "no such export" in message and ssh_hosts.hosts[0].address in message, (
        message
    )


def test_a_blob_container_mounted_on_a_host_gets_what_the_job_wrote(service, ssh_hosts, make_azurite, tmp_path):
    """azureBlobFileSystems with a Blob datastore registered for the container (a real Azurite): the
    container's mirror is staged onto the host, and the job's writes there end up in the container."""
    process, client = service
    azurite = make_azurite()
    container = "mntdata"
    scratch = blob_datastore(str(tmp_path / "scratch"), container, connection_string=azurite.connection_string)
    scratch.create_container()
    scratch.put_bytes("datasets/numbers.txt", b"3\n4\n5\n")
    client.request(
        "PUT",
        "workspaces/default/datastores/blobdata",
        json_body={"kind": "blob", "containerName": container, "connectionString": azurite.connection_string},
    )
    client.create_cluster("default", ssh_cluster_spec(ssh_hosts, [ssh_hosts.hosts[1]]), "mntblob")
    wait_for(
        lambda: client.get(client.cluster_path("default", "mntblob"))["nodeStateCounts"]["idleNodeCount"] == 1,
        "the SSH cluster's node",
        timeout=90,
    )
    bfs = "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs"
    client.create_job(
        "default",
        "default",
        {
            "properties": {
                "nodeCount": 1,
                "stdOutErrPathPrefix": bfs,
                "mountVolumes": {
                    "azureBlobFileSystems": [
                        {"accountName": AZURITE_ACCOUNT, "containerName": container, "relativeMountPath": "bfs"}
                    ]
                },
                "customToolkitSettings": {
                    "commandLine": (
                        f"test ! -e {process.home} && mkdir -p {bfs}/sums && "
                        f"awk '{{s += $1}} END {{print s}}' {bfs}/datasets/numbers.txt > {bfs}/sums/total.txt"
                    )
                },
            }
        },
        "blobjob",
        cluster="mntblob",
    )
    job = wait_job(client, "blobjob", timeout=JOB_TIMEOUT)
    assert job["executionState"] == "succeeded", (job["executionInfo"], read_log(client, "blobjob", "stderr.txt"))
    assert scratch.read("sums/total.txt") == b"12\n"
    assert scratch.read("datasets/numbers.txt") == b"3\n4\n5\n"
