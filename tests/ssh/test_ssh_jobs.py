"""The SSH backend on real sshd hosts: nodes from the hosts, jobs with live logs and outputs,
distributed PyTorch and MPI across the hosts, and a restart of the service mid-job."""

from __future__ import annotations

import json
import os
import shlex

import pytest

from helpers.api import read_log, submit, wait_job
from helpers.ssh import (
    PYTHON,
    create_ssh_cluster,
    mpi_expected,
    mpi_lines,
    put_in_datastore,
    submit_ddp_job,
    submit_mpi_job,
)
from helpers.waits import wait_for

JOB_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from helpers.service import ServiceProcess

    base = tmp_path_factory.mktemp("ssh-service")
    process = ServiceProcess(str(base / "home"), str(base / "runtime"))
    client = process.start()
    yield process, client
    process.stop()


@pytest.fixture(scope="module")
def cluster(service, ssh_hosts):
    _, client = service
    create_ssh_cluster(client, "sshc", ssh_hosts)
    return "sshc"


def nodes_of(client, cluster: str) -> list[dict]:
    return client.list(client.cluster_path("default", cluster) + "/nodes")


def test_nodes_are_the_hosts_with_their_own_facts(service, cluster, ssh_hosts):
    _, client = service
    nodes = nodes_of(client, cluster)
    assert sorted(n["ipAddress"] for n in nodes) == sorted(h.address for h in ssh_hosts.hosts), nodes
    for node in nodes:
        assert node["state"] == "idle" and node["port"] == 22, node
        assert node["cpus"] == os.cpu_count() and node["gpus"] == 0, node  # read from the host (nproc)
    # The wrapper and the MPI agent (for jobs in images) were installed on each host over SFTP, named by content.
    for host in ssh_hosts.hosts:
        listing = sorted(os.listdir(os.path.join(host.home, "batchai-node", "bin")))  # the host's ~, from outside
        assert [name.split("-")[0] for name in listing] == ["mpi_agent", "wrapper"], listing
        assert all(name.endswith(".py") for name in listing), listing


def test_job_runs_on_a_host_streams_logs_and_collects_outputs(service, cluster, ssh_hosts):
    home, client = service[0].home, service[1]
    scripts = put_in_datastore(
        home,
        "inputs/hello",
        {
            "hello.py": """
        import os, socket, sys, time
        out = os.environ["AZ_BATCHAI_OUTPUT_RESULTS"]
        print("started on", os.uname().nodename, flush=True)
        # The service's home is not visible on the host: everything came over SSH.
        print("service home visible:", os.path.exists(sys.argv[1]), flush=True)
        with open(os.path.join(out, "result.txt"), "w") as handle:
            handle.write("forty-two")
        os.makedirs(os.path.join(out, "deep", "er"))
        with open(os.path.join(out, "deep", "er", "x.bin"), "wb") as handle:
            handle.write(os.urandom(100000))
        with open(os.path.join(os.environ["AZ_BATCHAI_INPUT_SCRIPTS"], "hello.py")) as handle:
            print("input lines:", len(handle.read().splitlines()), flush=True)
        for i in range(30):
            print("tick", i, flush=True)
            time.sleep(0.2)
        print("oops", file=sys.stderr)
    """
        },
    )
    submit(
        client,
        "hello",
        cluster,
        {
            "nodeCount": 1,
            "inputDirectories": [{"id": "SCRIPTS", "path": scripts}],
            "outputDirectories": [{"id": "RESULTS", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external"}],
            "customToolkitSettings": {
                "commandLine": f"{PYTHON} $AZ_BATCHAI_INPUT_SCRIPTS/hello.py {shlex.quote(home)}"
            },
        },
    )
    # Logs stream back while the job runs.
    live = wait_for(
        lambda: "tick 3" in read_log(client, "hello", "stdout.txt"), "live log lines from the host", timeout=90
    )
    assert live
    assert client.job("default", "default", "hello")["executionState"] == "running"
    job = wait_job(client, "hello", timeout=JOB_TIMEOUT)
    assert job["executionState"] == "succeeded", job["executionInfo"]
    stdout = read_log(client, "hello", "stdout.txt")
    assert "service home visible: False" in stdout and "tick 29" in stdout, stdout
    assert "input lines:" in stdout
    assert read_log(client, "hello", "stderr.txt").strip() == "oops"
    assert read_log(client, "hello", "result.txt", "RESULTS") == "forty-two"
    assert len(client.read_job_file("default", "default", "hello", "deep/er/x.bin", "RESULTS")) == 100000
    node = client.list(client.job_path("default", "default", "hello") + "/nodes")[0]
    assert node["ipAddress"] in [h.address for h in ssh_hosts.hosts]


def test_inputs_named_by_location_are_staged_to_the_host(service, cluster):
    client = service[1]
    client.write_datastore_chunk("default", "default", "located/set/a.txt", b"alpha\n")
    client.write_datastore_chunk("default", "default", "located/set/deep/b.txt", b"beta\n")
    client.create_job(
        "default",
        "default",
        {
            "cluster": cluster,
            "nodeCount": 1,
            "inputDirectories": [{"id": "SET", "path": "datastore://default/located/set"}],
            "customToolkitSettings": {
                "commandLine": 'cat "$AZ_BATCHAI_INPUT_SET/a.txt" "$AZ_BATCHAI_INPUT_SET/deep/b.txt"'
                ' && echo "$AZ_BATCHAI_INPUT_SET"'
            },
        },
        "located",
    )
    job = client.wait_for_job("default", "default", "located", timeout=JOB_TIMEOUT)
    stdout = client.read_job_file("default", "default", "located", "stdout.txt").decode()
    assert job["executionState"] == "succeeded", (job["executionInfo"], stdout)
    lines = stdout.splitlines()
    assert lines[:2] == ["alpha", "beta"], stdout
    # On the host, the location is the host's staged mirror of the datastore, not the service's path.
    assert "/batchai-node/mirror/" in lines[2] and service[0].home not in lines[2], lines[2]


# ---------------------------------------------------------------------------------------------
# Distributed toolkits across the hosts


def test_pytorch_ddp_across_two_hosts(service, cluster, ssh_hosts):
    home, client = service[0].home, service[1]
    submit_ddp_job(client, home, cluster)
    job = wait_job(client, "ddp", timeout=JOB_TIMEOUT)
    assert job["executionState"] == "succeeded", (job["executionInfo"], _logs(client, "ddp"))
    records = []
    for rank in (0, 1):
        text = read_log(client, "ddp", f"stdout-{rank}.txt")
        records += [json.loads(line[7:]) for line in text.splitlines() if line.startswith("RECORD ")]
    assert sorted(r["rank"] for r in records) == [0, 1], records
    assert all(r["in_sync"] and r["world"] == 2 for r in records), records
    addresses = {h.address for h in ssh_hosts.hosts}
    assert {r["address"] for r in records} == addresses, f"the ranks must run on both hosts: {records}"
    assert records[0]["master"] in addresses
    assert len(client.read_job_file("default", "default", "ddp", "model.pt", "MODEL")) > 0


def test_mpi4py_ranks_across_two_hosts(service, cluster, ssh_hosts):
    home, client = service[0].home, service[1]
    submit_mpi_job(client, home, cluster, ssh_hosts.subnet)
    job = wait_job(client, "mpi", timeout=JOB_TIMEOUT)
    assert job["executionState"] == "succeeded", (job["executionInfo"], _logs(client, "mpi"))
    lines = mpi_lines(client)
    assert lines == mpi_expected(h.address for h in ssh_hosts.hosts), (lines, _logs(client, "mpi"))


def _logs(client, job: str) -> str:
    text = ""
    for entry in client.list(client.job_path("default", "default", job) + "/files", outputdirectoryid="stdouterr"):
        if entry["fileType"] == "file":
            text += f"--- {entry['name']}\n{read_log(client, job, entry['name'])[-3000:]}\n"
    return text


TF_LIKE_SCRIPT = """
    import json, os, socket, sys, threading, time
    config = json.loads(os.environ["TF_CONFIG"])
    kind, index = config["task"]["type"], config["task"]["index"]
    role = "worker" if kind == "master" else kind
    mine = config["cluster"][role][0 if kind == "master" else index]
    host, port = mine.rsplit(":", 1)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, int(port)))  # works only on the host that has this address
    server.listen(16)
    print("RECORD " + json.dumps({"kind": kind, "index": index, "address": mine}), flush=True)
    accepted = []
    def serve():
        while True:
            accepted.append(server.accept()[0])
    threading.Thread(target=serve, daemon=True).start()
    if kind == "ps":
        while True:
            time.sleep(3600)
    peers = [a for hosts in config["cluster"].values() for a in hosts if a != mine]
    workers = [a for a in config["cluster"]["worker"] if a != mine]
    deadline = time.time() + 90
    for peer in peers:
        while True:
            try:
                socket.create_connection(tuple([peer.rsplit(":", 1)[0], int(peer.rsplit(":", 1)[1])]), 2).close()
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit(f"cannot reach {peer}")
                time.sleep(0.1)
    while len(accepted) < len(workers):  # every other worker reached this one too
        if time.time() > deadline:
            sys.exit("the other workers never reached this one")
        time.sleep(0.1)
    print(f"reached {','.join(sorted(peers))}", flush=True)
"""


def test_tensorflow_ps_and_workers_reach_each_other_across_hosts(service, cluster, ssh_hosts):
    home, client = service[0].home, service[1]
    scripts = put_in_datastore(home, "inputs/tf", {"tf_task.py": TF_LIKE_SCRIPT})
    submit(
        client,
        "tf",
        cluster,
        {
            "nodeCount": 2,
            "inputDirectories": [{"id": "SCRIPTS", "path": scripts}],
            "tensorFlowSettings": {"pythonScriptFilePath": "$AZ_BATCHAI_INPUT_SCRIPTS/tf_task.py"},
        },
    )
    job = wait_job(client, "tf", timeout=JOB_TIMEOUT)
    assert job["executionState"] == "succeeded", (job["executionInfo"], _logs(client, "tf"))
    addresses = set()
    for name in ("ps-0", "wk-0", "wk-1"):
        text = read_log(client, "tf", f"stdout-{name}.txt")
        addresses |= {
            json.loads(line[7:])["address"].rsplit(":", 1)[0]
            for line in text.splitlines()
            if line.startswith("RECORD ")
        }
        if name.startswith("wk"):
            assert "reached " in text, text
    assert addresses == {h.address for h in ssh_hosts.hosts}, addresses  # tasks bound on both hosts


def _cache_entries(ssh_hosts) -> dict[str, float]:
    """Every file of every host's content cache, with its modification time."""
    entries = {}
    for host in ssh_hosts.hosts:
        cache = os.path.join(host.home, "batchai-node", "cache")
        for name in os.listdir(cache) if os.path.isdir(cache) else []:
            entries[f"{host.name}/{name}"] = os.stat(os.path.join(cache, name)).st_mtime_ns
    return entries


def test_resubmission_with_unchanged_inputs_sends_nothing_and_paths_stay_inside(service, cluster, ssh_hosts):
    home, client = service[0].home, service[1]
    data = put_in_datastore(home, "inputs/same", {"data.txt": "x" * 300000, "run.py": "print('ok')\n"})
    outside = os.path.join(os.path.dirname(home), "outside-the-home")
    os.makedirs(outside, exist_ok=True)
    with open(os.path.join(outside, "secret.txt"), "w") as handle:
        handle.write("not for the hosts")
    spec = {
        "nodeCount": 1,
        "inputDirectories": [
            {"id": "DATA", "path": data},
            {"id": "ESCAPE", "path": os.path.join(home, "datastores", "..", "..", "outside-the-home")},
        ],
        "customToolkitSettings": {"commandLine": f"{PYTHON} $AZ_BATCHAI_INPUT_DATA/run.py"},
    }
    submit(client, "same-1", cluster, spec)
    assert wait_job(client, "same-1", timeout=JOB_TIMEOUT)["executionState"] == "succeeded"
    first = _cache_entries(ssh_hosts)
    submit(client, "same-2", cluster, spec)
    assert wait_job(client, "same-2", timeout=JOB_TIMEOUT)["executionState"] == "succeeded"
    assert read_log(client, "same-2", "stdout.txt").strip() == "ok"
    # The same content is in the hosts' caches once, and was not sent again (nothing rewritten).
    again = _cache_entries(ssh_hosts)
    assert {k: v for k, v in again.items() if k in first} == first, (first, again)
    # A path that only looks like it is under the home ("..") is not staged anywhere.
    for host in ssh_hosts.hosts:
        for directory, _, names in os.walk(host.home):
            assert "secret.txt" not in names, directory
