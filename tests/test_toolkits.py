"""Every toolkit end to end on a real 2-node local cluster, through the REST API.

Real `batchai serve`, real processes, real PyTorch (gloo) DDP, real mpirun; no mocks. Each test
makes its own 2-node cluster on one service shared by the module, and checks what the Batch AI
contract promises (research contract sections 1, 4 and 5): the environment, how each toolkit is
launched across the nodes, and the stdout/stderr file names.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib.util
import io
import json
import os
import re
import shlex
import sys
import textwrap
import uuid

import pytest

from helpers.api import make_cluster, read_log, submit, wait_job
from helpers.tools import require_tool

PYTHON = sys.executable
JOB_TIMEOUT = 120.0


# ---------------------------------------------------------------------------------------------
# Helpers


def write_script(directory, name: str, body: str) -> str:
    path = directory / name
    path.write_text(textwrap.dedent(body).lstrip())
    return str(path)


def job_path(client, job: str) -> str:
    return client.job_path("default", "default", job)


def list_files(client, job: str, output_id: str = "stdouterr") -> dict[str, dict]:
    entries = client.list(f"{job_path(client, job)}/files", outputdirectoryid=output_id)
    return {entry["name"]: entry for entry in entries}


def job_tasks(client, job: str) -> list[dict]:
    return client.list(f"{job_path(client, job)}/tasks")


def job_nodes(client, job: str) -> list[dict]:
    """The job's nodes in launch order (index 0 is the master)."""
    return client.list(f"{job_path(client, job)}/nodes")


def read_bytes(client, job: str, path: str, output_id: str) -> bytes:
    return client.read_job_file("default", "default", job, path, output_id)


def logs_of(client, job: str) -> str:
    """Every file of the job's stdouterr directory, for failure messages."""
    parts = []
    for name, entry in sorted(list_files(client, job).items()):
        if entry["fileType"] == "file":
            parts.append(f"--- {name}\n{read_log(client, job, name)[-3000:]}")
    return "\n".join(parts)


def run_job(client, name: str, cluster: str, spec: dict, timeout: float = JOB_TIMEOUT) -> dict:
    """Submits a job, waits for it, and fails with all its logs unless it succeeded."""
    submit(client, name, cluster, spec)
    job = wait_job(client, name, timeout=timeout)
    assert job["executionState"] == "succeeded", (
        f"job {name} {job['executionState']}: {job['executionInfo']}\n{logs_of(client, name)}")
    assert job["executionInfo"]["exitCode"] == 0, job["executionInfo"]
    return job


def records(text: str, tag: str = "RECORD") -> list[dict]:
    """The JSON objects a script printed as `<tag> {...}` lines."""
    prefix = tag + " "
    return [json.loads(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix)]


def one_record(text: str, tag: str = "RECORD") -> dict:
    found = records(text, tag)
    assert len(found) == 1, f"expected one {tag} line in:\n{text}"
    return found[0]


def when(iso: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))


def task_by_name(tasks: list[dict], phase: str = "main") -> dict[str, dict]:
    return {t["name"]: t for t in tasks if t["phase"] == phase}


@pytest.fixture
def cluster(shared_client, unique):
    """A fresh 2-node local cluster on the module's service."""
    name = unique("tk")
    make_cluster(shared_client, name, nodes=2)
    return name


# ---------------------------------------------------------------------------------------------
# 1. PyTorch DDP over gloo


DDP_TRAINING = """
    torch.manual_seed(0)  # the same initial weights on every rank
    model = torch.nn.Linear(4, 1)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05)
    data = torch.Generator().manual_seed(100 + rank)  # a different shard per rank
    for step in range(20):
        x = torch.randn(16, 4, generator=data)
        y = x.sum(dim=1, keepdim=True)
        loss = ((ddp(x) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(weights) for _ in range(world)]
    dist.all_gather(gathered, weights)
    in_sync = all(torch.equal(gathered[0], other) for other in gathered)
    print(f"rank {rank} of {world} trained, weights in sync: {in_sync}", flush=True)
    print("RECORD " + json.dumps({
        "rank": rank, "world": world, "in_sync": in_sync, "loss": loss.item(),
        "task_index": os.environ["AZ_BATCHAI_TASK_INDEX"],
        "backend": os.environ["AZ_BATCHAI_PYTORCH_BACKEND"],
        "job_temp": os.environ["AZ_BATCHAI_JOB_TEMP"],
        "init_method": os.environ["AZ_BATCHAI_PYTORCH_INIT_METHOD"],
    }), flush=True)
    if rank == 0:
        torch.save(model.state_dict(), os.path.join(os.environ["AZ_BATCHAI_OUTPUT_MODEL"], "model.pt"))
    dist.barrier()  # gloo aborts at teardown when a peer is already gone
    dist.destroy_process_group()
    # gloo's threads can still abort interpreter teardown ("terminate called without an active
    # exception"); that is PyTorch's, not the launcher's, so skip it.
    print(end="", flush=True)
    os._exit(0)
"""

DDP_ENV_SCRIPT = """
    import json, os
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")  # env://: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
    rank, world = dist.get_rank(), dist.get_world_size()
""" + DDP_TRAINING

# The Batch AI PyTorch recipe: init_method from AZ_BATCHAI_PYTORCH_INIT_METHOD, rank from
# AZ_BATCHAI_TASK_INDEX and the world size passed by the job itself (Batch AI did not export it).
DDP_RECIPE_SCRIPT = """
    import argparse, json, os
    import torch
    import torch.distributed as dist

    parser = argparse.ArgumentParser()
    parser.add_argument("--world-size", type=int, required=True)
    parser.add_argument("--dist-backend", required=True)
    parser.add_argument("--dist-url", required=True)
    parser.add_argument("--rank", type=int, required=True)
    args = parser.parse_args()
    # The recipe's arguments are the same variables, expanded by the service.
    assert args.dist_url == os.environ["AZ_BATCHAI_PYTORCH_INIT_METHOD"], args
    assert args.dist_backend == os.environ["AZ_BATCHAI_PYTORCH_BACKEND"], args
    assert args.rank == int(os.environ["AZ_BATCHAI_TASK_INDEX"]), args
    for name in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"):
        os.environ.pop(name, None)  # prove the init_method alone is enough
    dist.init_process_group(backend=os.environ["AZ_BATCHAI_PYTORCH_BACKEND"],
                            init_method=os.environ["AZ_BATCHAI_PYTORCH_INIT_METHOD"],
                            rank=int(os.environ["AZ_BATCHAI_TASK_INDEX"]), world_size=args.world_size)
    rank, world = dist.get_rank(), dist.get_world_size()
""" + DDP_TRAINING


def check_ddp_job(client, name: str) -> None:
    import torch

    files = list_files(client, name)
    assert {"stdout-0.txt", "stdout-1.txt", "stderr-0.txt", "stderr-1.txt"} <= set(files), sorted(files)
    assert "stdout.txt" not in files  # one file pair per rank for pytorch
    tasks = task_by_name(job_tasks(client, name))
    assert set(tasks) == {"0", "1"}, tasks
    assert tasks["0"]["node"] != tasks["1"]["node"], "the two ranks must run on different nodes"
    assert [n["nodeId"] for n in job_nodes(client, name)] == [tasks["0"]["node"], tasks["1"]["node"]]
    losses = []
    for rank in (0, 1):
        text = read_log(client, name, f"stdout-{rank}.txt")
        assert f"rank {rank} of 2 trained, weights in sync: True" in text, text
        record = one_record(text)
        assert record["task_index"] == str(rank) and record["backend"] == "gloo", record
        # Each rank ran in its own node's job temp (the path names the node).
        assert f"/{tasks[str(rank)]['node']}/" in record["job_temp"], (record, tasks)
        losses.append(record["loss"])
    assert losses[0] < 1.0, f"the model did not learn: loss {losses}"

    outputs = list_files(client, name, "MODEL")
    assert "model.pt" in outputs and outputs["model.pt"]["fileType"] == "file", outputs
    assert outputs["model.pt"]["contentLength"] > 0
    state = torch.load(io.BytesIO(read_bytes(client, name, "model.pt", "MODEL")), weights_only=True)
    assert set(state) == {"weight", "bias"} and tuple(state["weight"].shape) == (1, 4), state
    # Trained towards y = sum(x): every weight moved from its random start towards 1.
    assert torch.all(state["weight"] > 0.5), state


PYTORCH_OUTPUTS = [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external"}]


def test_pytorch_ddp_gloo_env_init(shared_client, cluster, unique, tmp_path):
    script = write_script(tmp_path, "ddp_env.py", DDP_ENV_SCRIPT)
    name = unique("ddp-env")
    run_job(shared_client, name, cluster, {
        "nodeCount": 2, "outputDirectories": PYTORCH_OUTPUTS,
        "pyTorchSettings": {"pythonScriptFilePath": script, "communicationBackend": "gloo"},
    })
    check_ddp_job(shared_client, name)


def test_pytorch_ddp_gloo_batchai_init_method(shared_client, cluster, unique, tmp_path):
    script = write_script(tmp_path, "ddp_recipe.py", DDP_RECIPE_SCRIPT)
    name = unique("ddp-recipe")
    job = run_job(shared_client, name, cluster, {
        "nodeCount": 2, "outputDirectories": PYTORCH_OUTPUTS,
        "pyTorchSettings": {
            "pythonScriptFilePath": script, "communicationBackend": "gloo",
            "commandLineArgs": "--world-size 2 --dist-backend $AZ_BATCHAI_PYTORCH_BACKEND"
                               " --dist-url $AZ_BATCHAI_PYTORCH_INIT_METHOD --rank $AZ_BATCHAI_TASK_INDEX",
        },
    })
    assert job["toolType"] == "pytorch"
    check_ddp_job(shared_client, name)
    init = one_record(read_log(shared_client, name, "stdout-1.txt"))["init_method"]
    assert re.fullmatch(r"(tcp|file)://\S+", init), init


# ---------------------------------------------------------------------------------------------
# 2. customMpi with mpi4py

MPI4PY_SCRIPT = """
    import os, sys
    try:
        from mpi4py import MPI
    except ImportError as failure:
        print(f"MPI4PY_IMPORT_FAILED: {failure}", file=sys.stderr, flush=True)
        sys.exit(3)
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    total = comm.allreduce(rank + 1, op=MPI.SUM)
    gathered = comm.allgather(os.environ["OMPI_COMM_WORLD_RANK"])
    # User variables and secrets must reach every rank (mpirun forwards them; Batch AI issue 27).
    line = (f"mpi4py rank {rank} of {size} allreduce {total} ranks {','.join(gathered)} "
            f"job {os.environ['AZ_BATCHAI_JOB_NAME']} tag {os.environ.get('MPI_TAG')} "
            f"secret length {len(os.environ.get('MPI_SECRET', ''))} argv {' '.join(sys.argv[1:])}\\n")
    os.write(1, line.encode())  # one write: see MPI_RANK_SCRIPT
"""


def test_custom_mpi_mpi4py_two_ranks_over_two_nodes(shared_client, cluster, unique, tmp_path):
    require_tool("mpirun", "apt-get install openmpi-bin")
    if importlib.util.find_spec("mpi4py") is None:
        pytest.fail("mpi4py is not installed for the tasks' Python; `pip install mpi4py` (needs libopenmpi-dev)")
    script = write_script(tmp_path, "mpi_allreduce.py", MPI4PY_SCRIPT)
    name = unique("mpi")
    submit(shared_client, name, cluster, {
        "nodeCount": 2,
        "environmentVariables": [{"name": "MPI_TAG", "value": "tag-$AZ_BATCHAI_JOB_NAME"}],
        "secrets": [{"name": "MPI_SECRET", "value": "x" * 17}],
        "customMpiSettings": {
            # $OMPI_COMM_WORLD_RANK is only known inside each rank: the rank's shell expands it.
            "commandLine": f"{shlex.quote(PYTHON)} {shlex.quote(script)} --shard $OMPI_COMM_WORLD_RANK",
            "processCount": 2,
        },
    })
    job = wait_job(shared_client, name, timeout=JOB_TIMEOUT)
    stderr = read_log(shared_client, name, "stderr.txt")
    if "MPI4PY_IMPORT_FAILED" in stderr:
        pytest.fail(f"mpi4py could not be imported inside the MPI ranks:\n{stderr}")
    assert job["executionState"] == "succeeded", f"{job['executionInfo']}\n{logs_of(shared_client, name)}"
    files = list_files(shared_client, name)
    assert "stdout.txt" in files and "stdout-0.txt" not in files, sorted(files)
    lines = sorted(line for line in read_log(shared_client, name, "stdout.txt").splitlines()
                   if line.startswith("mpi4py "))
    assert lines == [f"mpi4py rank {rank} of 2 allreduce 3 ranks 0,1 job {name} tag tag-{name} secret length 17"
                     f" argv --shard {rank}" for rank in (0, 1)], lines
    # One mpirun on the master node drives both ranks.
    assert [t["name"] for t in job_tasks(shared_client, name)] == ["master"]


# ---------------------------------------------------------------------------------------------
# 3. horovod, chainer, cntk (Python), caffe (Python): mpirun of `python <script> <args>`

# mpirun gives each rank a pty, on which Python's print() writes the text and its newline with two
# write() calls, so the ranks' lines can interleave in the shared stdout.txt ("...rank 1...rank 0...\n\n"),
# as they did on Batch AI. Each rank writes its whole line with one write() to keep lines intact.
MPI_RANK_SCRIPT = """
    import os, sys
    line = (f"{sys.argv[1]} rank {os.environ['OMPI_COMM_WORLD_RANK']} size {os.environ['OMPI_COMM_WORLD_SIZE']} "
            f"args {' '.join(sys.argv[2:])} stdouterr {os.environ['AZ_BATCHAI_STDOUTERR_DIR']}\\n")
    os.write(1, line.encode())
"""

MPI_LAUNCHED = {
    "horovod": ("horovodSettings", {}),
    "chainer": ("chainerSettings", {}),
    "cntk": ("cntkSettings", {"languageType": "Python"}),
    "caffe": ("caffeSettings", {}),
}


@pytest.mark.parametrize("toolkit", sorted(MPI_LAUNCHED))
def test_mpi_launched_toolkit_runs_both_ranks(shared_client, cluster, unique, tmp_path, toolkit):
    require_tool("mpirun", "apt-get install openmpi-bin")
    script = write_script(tmp_path, "ranks.py", MPI_RANK_SCRIPT)
    block, extra = MPI_LAUNCHED[toolkit]
    name = unique(toolkit)
    job = run_job(shared_client, name, cluster, {
        "nodeCount": 2,
        block: {"pythonScriptFilePath": script, "pythonInterpreterPath": PYTHON, "processCount": 2,
                "commandLineArgs": f"{toolkit} --job $AZ_BATCHAI_JOB_NAME", **extra},
    })
    assert job["toolType"] == toolkit
    files = list_files(shared_client, name)
    assert {"stdout.txt", "stderr.txt"} <= set(files) and "stdout-0.txt" not in files, sorted(files)
    stdouterr = shared_client.job(
        "default", "default", name)["jobOutputDirectoryPathSegment"] + "/stdouterr"
    lines = sorted(line for line in read_log(shared_client, name, "stdout.txt").splitlines()
                   if line.startswith(f"{toolkit} rank "))
    assert len(lines) == 2, read_log(shared_client, name, "stdout.txt")
    for rank, line in enumerate(lines):
        assert line.startswith(f"{toolkit} rank {rank} size 2 args --job {name} stdouterr /"), line
        assert line.endswith(stdouterr), (line, stdouterr)


# ---------------------------------------------------------------------------------------------
# 4. TensorFlow parameter servers and workers

TF_SCRIPT = """
    import json, os, socket, sys, threading, time

    config = json.loads(os.environ["TF_CONFIG"])
    kind, index = config["task"]["type"], config["task"]["index"]
    role = {"master": "worker", "chief": "chief"}.get(kind, kind)
    mine = config["cluster"][role][0 if kind == "master" else index]
    host, port = mine.rsplit(":", 1)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, int(port)))  # what a tf.train.Server does with its own address
    # Printed before listening: no peer can reach this task, and so no worker can end the job
    # (which stops the ps), before its output is written.
    print("RECORD " + json.dumps({
        "args": sys.argv[1:], "tf_config": config, "task_index": os.environ["AZ_BATCHAI_TASK_INDEX"],
        "ps_hosts": os.environ["AZ_BATCHAI_PS_HOSTS"], "worker_hosts": os.environ["AZ_BATCHAI_WORKER_HOSTS"],
        "address": mine,
    }), flush=True)
    print(f"bound {mine}", flush=True)
    server.listen(16)

    def serve():
        while True:
            server.accept()[0].close()

    threading.Thread(target=serve, daemon=True).start()
    if kind == "ps":
        while True:  # a real parameter server never exits by itself
            time.sleep(3600)

    # A worker reaches every other task of the cluster, as the TF runtime does at start-up.
    peers = [a for hosts in config["cluster"].values() for a in hosts if a != mine]
    deadline = time.time() + 60
    for peer in peers:
        while True:
            try:
                peer_host, peer_port = peer.rsplit(":", 1)
                socket.create_connection((peer_host, int(peer_port)), 2).close()
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit(f"cannot reach {peer}")
                time.sleep(0.1)
    print(f"reached {','.join(sorted(peers))}", flush=True)
    # Stay up until every worker has reached its peers (files in the shared job temp).
    shared = os.environ["AZ_BATCHAI_SHARED_JOB_TEMP"]
    open(os.path.join(shared, f"reached-{kind}-{index}"), "w").close()
    workers = sum(len(config["cluster"].get(r, [])) for r in ("chief", "worker"))
    while len([f for f in os.listdir(shared) if f.startswith("reached-")]) < workers:
        if time.time() > deadline:
            sys.exit("the other workers never reached their peers")
        time.sleep(0.1)
"""


def run_tensorflow(client, cluster: str, name: str, tmp_path, chief: bool) -> tuple[dict, dict[str, dict], list]:
    script = write_script(tmp_path, "tf_task.py", TF_SCRIPT)
    settings = {
        "pythonScriptFilePath": script, "pythonInterpreterPath": PYTHON,
        "parameterServerCount": 1, "workerCount": 2,
        "masterCommandLineArgs": "--role master --job $AZ_BATCHAI_JOB_NAME",
        "workerCommandLineArgs": "--role worker",
        "parameterServerCommandLineArgs": "--role ps",
    }
    if chief:
        settings["tfConfigChief"] = True
    job = run_job(client, name, cluster, {"nodeCount": 2, "tensorFlowSettings": settings})
    assert job["toolType"] == "tensorflow"
    files = list_files(client, name)
    expected = {f"{stream}-{task}.txt" for stream in ("stdout", "stderr") for task in ("wk-0", "wk-1", "ps-0")}
    assert expected <= set(files), sorted(files)
    assert "stdout.txt" not in files
    logs = {}
    for task in ("wk-0", "wk-1", "ps-0"):
        text = read_log(client, name, f"stdout-{task}.txt")
        record = one_record(text)
        assert f"bound {record['address']}" in text, text
        logs[task] = record
    tasks = task_by_name(job_tasks(client, name))
    nodes = job_nodes(client, name)
    return logs, tasks, nodes


def check_tf_placement(logs: dict, tasks: dict, nodes: list) -> tuple[str, str, str]:
    """ps0 and worker0 on node 0 at :2222/:2223, worker1 on node 1 at :2222 (contract section 4)."""
    assert len(nodes) == 2 and nodes[0]["ipAddress"] != nodes[1]["ipAddress"], nodes
    ip0, ip1 = nodes[0]["ipAddress"], nodes[1]["ipAddress"]
    ps0, wk0, wk1 = f"{ip0}:2222", f"{ip0}:2223", f"{ip1}:2222"
    assert tasks["ps-0"]["node"] == nodes[0]["nodeId"] and tasks["wk-0"]["node"] == nodes[0]["nodeId"], tasks
    assert tasks["wk-1"]["node"] == nodes[1]["nodeId"], tasks
    assert {t: tasks[t]["role"] for t in tasks} == {"ps-0": "ps", "wk-0": "worker", "wk-1": "worker"}, tasks
    for task, record in logs.items():
        assert record["ps_hosts"] == ps0, record
        assert record["worker_hosts"] == f"{wk0},{wk1}", record
        assert record["tf_config"]["environment"] == "cloud", record
        assert record["task_index"] == task.split("-")[1], (task, record)
    assert (logs["ps-0"]["address"], logs["wk-0"]["address"], logs["wk-1"]["address"]) == (ps0, wk0, wk1)
    assert logs["wk-0"]["args"][:2] == ["--role", "master"] and logs["wk-1"]["args"] == ["--role", "worker"]
    assert logs["ps-0"]["args"] == ["--role", "ps"]
    # The job ended with its workers; the parameter server, which never exits, was stopped.
    assert tasks["wk-0"]["exitCode"] == 0 and tasks["wk-1"]["exitCode"] == 0, tasks
    assert tasks["ps-0"]["state"] == "killed", tasks["ps-0"]
    return ps0, wk0, wk1


def test_tensorflow_ps_workers_batchai_tf_config(shared_client, cluster, unique, tmp_path):
    name = unique("tf")
    logs, tasks, nodes = run_tensorflow(shared_client, cluster, name, tmp_path, chief=False)
    ps0, wk0, wk1 = check_tf_placement(logs, tasks, nodes)
    assert logs["wk-0"]["args"] == ["--role", "master", "--job", name]
    cluster_spec = {"ps": [ps0], "worker": [wk0, wk1]}  # Batch AI's form: master is worker[0], no chief
    assert logs["wk-0"]["tf_config"] == {"cluster": cluster_spec, "task": {"type": "master", "index": 0},
                                         "environment": "cloud"}
    assert logs["wk-1"]["tf_config"]["cluster"] == cluster_spec
    assert logs["wk-1"]["tf_config"]["task"] == {"type": "worker", "index": 1}
    assert logs["ps-0"]["tf_config"]["cluster"] == cluster_spec
    assert logs["ps-0"]["tf_config"]["task"] == {"type": "ps", "index": 0}


def test_tensorflow_opt_in_chief_tf_config(shared_client, cluster, unique, tmp_path):
    name = unique("tf-chief")
    logs, tasks, nodes = run_tensorflow(shared_client, cluster, name, tmp_path, chief=True)
    ps0, wk0, wk1 = check_tf_placement(logs, tasks, nodes)
    cluster_spec = {"chief": [wk0], "worker": [wk1], "ps": [ps0]}  # what tf.estimator expects
    for task in ("wk-0", "wk-1", "ps-0"):
        assert logs[task]["tf_config"]["cluster"] == cluster_spec, logs[task]
    assert logs["wk-0"]["tf_config"]["task"] == {"type": "chief", "index": 0}
    assert logs["wk-1"]["tf_config"]["task"] == {"type": "worker", "index": 0}
    assert logs["ps-0"]["tf_config"]["task"] == {"type": "ps", "index": 0}


# ---------------------------------------------------------------------------------------------
# 5. Caffe2: one task per node, shard id and a file-store rendezvous in the shared job temp

CAFFE2_SCRIPT = """
    import argparse, os, sys, time

    parser = argparse.ArgumentParser()
    parser.add_argument("--shard_id", type=int, required=True)
    parser.add_argument("--num_shards", type=int, required=True)
    parser.add_argument("--file_store_path", required=True)
    args = parser.parse_args()
    assert args.file_store_path == os.environ["AZ_BATCHAI_SHARED_JOB_TEMP"]
    store = args.file_store_path
    mine = os.path.join(store, f"shard-{args.shard_id}")
    with open(mine + ".tmp", "w") as handle:
        handle.write(f"hello from shard {args.shard_id} in {os.environ['AZ_BATCHAI_JOB_TEMP']}")
    os.replace(mine + ".tmp", mine)
    peer = os.path.join(store, f"shard-{1 - args.shard_id}")
    deadline = time.time() + 60
    while not os.path.exists(peer):
        if time.time() > deadline:
            sys.exit(f"shard {args.shard_id}: {peer} never appeared")
        time.sleep(0.05)
    with open(peer) as handle:
        print(f"shard {args.shard_id} of {args.num_shards} (task index {os.environ['AZ_BATCHAI_TASK_INDEX']}) "
              f"read: {handle.read()}", flush=True)
"""


def test_caffe2_shards_rendezvous_in_shared_job_temp(shared_client, cluster, unique, tmp_path):
    script = write_script(tmp_path, "caffe2_shard.py", CAFFE2_SCRIPT)
    name = unique("caffe2")
    run_job(shared_client, name, cluster, {
        "nodeCount": 2,
        "caffe2Settings": {
            "pythonScriptFilePath": script, "pythonInterpreterPath": PYTHON,
            "commandLineArgs": "--shard_id $AZ_BATCHAI_TASK_INDEX --num_shards 2"
                               " --file_store_path $AZ_BATCHAI_SHARED_JOB_TEMP",
        },
    })
    files = list_files(shared_client, name)
    assert {"stdout-0.txt", "stdout-1.txt", "stderr-0.txt", "stderr-1.txt"} <= set(files), sorted(files)
    tasks = task_by_name(job_tasks(shared_client, name))
    nodes = [n["nodeId"] for n in job_nodes(shared_client, name)]
    assert [tasks["0"]["node"], tasks["1"]["node"]] == nodes and nodes[0] != nodes[1], (tasks, nodes)
    for shard in (0, 1):
        text = read_log(shared_client, name, f"stdout-{shard}.txt")
        peer = 1 - shard
        pattern = (rf"shard {shard} of 2 \(task index {shard}\) read: hello from shard {peer} "
                   rf"in /\S+/{re.escape(nodes[peer])}/\S+")
        assert re.fullmatch(pattern, text.strip()), text


# ---------------------------------------------------------------------------------------------
# 6. The environment contract, variable by variable

ENV_DUMP_SCRIPT = """
    import hashlib, json, os, subprocess

    env = dict(os.environ)
    secret = env.pop("API_KEY", None)  # never echo a secret; its digest proves it arrived intact
    facts = {"cwd": os.getcwd()}
    for name in ("AZ_BATCHAI_MOUNT_ROOT", "AZ_BATCHAI_JOB_MOUNT_ROOT", "AZ_BATCHAI_JOB_TEMP",
                 "AZ_BATCHAI_JOB_TEMP_DIR", "AZ_BATCHAI_SHARED_JOB_TEMP", "AZ_BATCHAI_STDOUTERR_DIR",
                 "AZ_BATCHAI_OUTPUT_OUT"):
        facts[name + ":isdir"] = os.path.isdir(env.get(name, "/nonexistent"))
    output = os.path.join(env["AZ_BATCHAI_OUTPUT_OUT"], "written-by-job.txt")
    with open(output, "w") as handle:
        handle.write("the output directory is writable")
    facts["stdout_in_stdouterr_dir"] = os.path.isfile(os.path.join(env["AZ_BATCHAI_STDOUTERR_DIR"], "stdout.txt"))
    with open(env["AZ_BATCHAI_MPI_HOST_FILE"]) as handle:
        facts["hostfile"] = handle.read()
    facts["secret_sha256"] = hashlib.sha256(secret.encode()).hexdigest() if secret is not None else None
    print("RECORD " + json.dumps({"env": env, "facts": facts}), flush=True)
"""


def test_job_environment_contract(shared_client, shared_service, unique, tmp_path):
    require_tool("mpirun", "apt-get install openmpi-bin")
    client = shared_client
    cluster = unique("env")
    make_cluster(client, cluster, nodes=2, gpusPerNode=2)
    script = write_script(tmp_path, "dump_env.py", ENV_DUMP_SCRIPT)
    secret = f"s3cr3t-{uuid.uuid4().hex}-$NOT_A_VAR"
    name = unique("env")
    mpirun = ("mpirun --allow-run-as-root --oversubscribe --hostfile $AZ_BATCHAI_MPI_HOST_FILE -np 2"
              " bash -c 'echo mpi-slot-$OMPI_COMM_WORLD_RANK'")
    command = "; ".join([
        'echo "nope=[$AZ_BATCHAI_INPUT_NOPE]"',
        "GREETING=hello sh -c 'echo greeting=$GREETING' | tr a-z A-Z",
        '[ -n "$API_KEY" ] && echo secret-seen-by-shell',
        f"{mpirun} | sort",
        f"{shlex.quote(PYTHON)} {shlex.quote(script)}",
    ])
    job = run_job(client, name, cluster, {
        "nodeCount": 2,
        "inputDirectories": [{"id": "DATA", "path": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs/data"},
                             {"id": "SCRIPTS", "path": str(tmp_path)}],
        "outputDirectories": [{"id": "OUT", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external"}],
        "environmentVariables": [{"name": "RESULTS", "value": "$AZ_BATCHAI_OUTPUT_OUT/results"},
                                 {"name": "PLAIN", "value": "a value with spaces"}],
        "secrets": [{"name": "API_KEY", "value": secret}],
        "customToolkitSettings": {"commandLine": command},
    })
    stdout = read_log(client, name, "stdout.txt")
    lines = stdout.splitlines()
    # Shell features of the command line: `;`, `|`, `VAR=x cmd`, undefined input expands to "".
    assert lines[:5] == ["nope=[]", "GREETING=HELLO", "secret-seen-by-shell", "mpi-slot-0", "mpi-slot-1"], stdout
    record = one_record(stdout)
    env, facts = record["env"], record["facts"]

    nodes = job_nodes(client, name)
    assert len(nodes) == 2
    master = nodes[0]["nodeId"]
    for variable in ("AZ_BATCHAI_MOUNT_ROOT", "AZ_BATCHAI_JOB_MOUNT_ROOT", "AZ_BATCHAI_JOB_TEMP",
                     "AZ_BATCHAI_JOB_TEMP_DIR", "AZ_BATCHAI_SHARED_JOB_TEMP", "AZ_BATCHAI_STDOUTERR_DIR",
                     "AZ_BATCHAI_OUTPUT_OUT", "AZ_BATCHAI_INPUT_DATA", "AZ_BATCHAI_MPI_HOST_FILE"):
        assert os.path.isabs(env[variable]), (variable, env.get(variable))
    for variable in ("AZ_BATCHAI_MOUNT_ROOT", "AZ_BATCHAI_JOB_MOUNT_ROOT", "AZ_BATCHAI_JOB_TEMP",
                     "AZ_BATCHAI_JOB_TEMP_DIR", "AZ_BATCHAI_SHARED_JOB_TEMP", "AZ_BATCHAI_STDOUTERR_DIR",
                     "AZ_BATCHAI_OUTPUT_OUT"):
        assert facts[variable + ":isdir"], f"{variable}={env[variable]} does not exist on the node"

    # Mount roots: the node's cluster mounts, and this job's own mounts.
    assert f"/{master}/" in env["AZ_BATCHAI_MOUNT_ROOT"] + "/", env["AZ_BATCHAI_MOUNT_ROOT"]
    assert f"/{name}/" in env["AZ_BATCHAI_JOB_MOUNT_ROOT"], env["AZ_BATCHAI_JOB_MOUNT_ROOT"]
    # Inputs: the path after expansion, verbatim id.
    assert env["AZ_BATCHAI_INPUT_DATA"] == env["AZ_BATCHAI_JOB_MOUNT_ROOT"] + "/afs/data"
    assert env["AZ_BATCHAI_INPUT_SCRIPTS"] == str(tmp_path)
    assert "AZ_BATCHAI_INPUT_NOPE" not in env
    # Job temp: the working directory, under the root of all job temps; the shared temp is per job.
    assert facts["cwd"] == env["AZ_BATCHAI_JOB_TEMP"]
    assert os.path.commonpath([env["AZ_BATCHAI_JOB_TEMP"], env["AZ_BATCHAI_JOB_TEMP_DIR"]]) == \
        env["AZ_BATCHAI_JOB_TEMP_DIR"] != env["AZ_BATCHAI_JOB_TEMP"]
    assert env["AZ_BATCHAI_SHARED_JOB_TEMP"] not in (env["AZ_BATCHAI_JOB_TEMP"], env["AZ_BATCHAI_JOB_TEMP_DIR"])
    # stdout/stderr: the directory stdout.txt is written to, at <segment>/stdouterr (contract section 5).
    segment = client.job("default", "default", name)["jobOutputDirectoryPathSegment"]
    assert env["AZ_BATCHAI_STDOUTERR_DIR"].endswith("/" + segment + "/stdouterr"), (env["AZ_BATCHAI_STDOUTERR_DIR"],
                                                                                     segment)
    assert facts["stdout_in_stdouterr_dir"]
    # Output directory: created, writable, and what the API lists for outputdirectoryid=OUT.
    assert env["AZ_BATCHAI_OUTPUT_OUT"].endswith("/" + segment + "/outputs/OUT"), env["AZ_BATCHAI_OUTPUT_OUT"]
    assert "written-by-job.txt" in list_files(client, name, "OUT")
    assert read_log(client, name, "written-by-job.txt", "OUT") == "the output directory is writable"
    # MPI hostfile: OpenMPI syntax, one slot per CPU of the job's nodes (1 CPU each here).
    hostfile = [line for line in facts["hostfile"].splitlines() if line.strip()]
    assert hostfile and all(re.fullmatch(r"\S+ slots=[1-9]\d*", line) for line in hostfile), facts["hostfile"]
    assert sum(int(line.split("slots=")[1]) for line in hostfile) == sum(n["cpus"] for n in nodes) == 2
    # GPUs and the job's hosts.
    assert env["AZ_BATCHAI_NUM_GPUS"] == "2" and env["AZ_BATCHAI_NUM_GPUS_PER_NODE"] == "2", env
    assert env["AZ_BATCH_HOST_LIST"].split(",") == [n["ipAddress"] for n in nodes], env["AZ_BATCH_HOST_LIST"]
    # User variables (expanded) and the secret (intact, "$" kept verbatim).
    assert env["RESULTS"] == env["AZ_BATCHAI_OUTPUT_OUT"] + "/results"
    assert env["PLAIN"] == "a value with spaces"
    assert facts["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest(), "the secret did not reach the job"

    # The secret is never given back: job GET, job list, task list, files, the service's log and files.
    visible = {
        "job GET": json.dumps(client.job("default", "default", name)),
        "job list": json.dumps(client.list("workspaces/default/experiments/default/jobs")),
        "workspace job list": json.dumps(client.list("workspaces/default/jobs")),
        "task list": json.dumps(job_tasks(client, name)),
        "stdouterr files": logs_of(client, name),
    }
    with open(shared_service.log_path, errors="replace") as handle:
        visible["service log"] = handle.read()
    for where, text in visible.items():
        assert secret not in text, f"the secret value leaked into the {where}"
    assert "API_KEY" in visible["job GET"]  # its name is listed, its value is not
    for folder in ("nodes", "datastores", "shared"):
        for root, _dirs, files in os.walk(os.path.join(shared_service.home, folder)):
            for file_name in files:
                path = os.path.join(root, file_name)
                try:
                    with open(path, "rb") as handle:
                        content = handle.read()
                except FileNotFoundError:  # a heartbeat's temporary file, replaced meanwhile
                    continue
                assert secret.encode() not in content, f"the secret value was left on disk in {path}"


# ---------------------------------------------------------------------------------------------
# 7. Job preparation on every node

PREP_TASK_SCRIPT = """
    import os
    marker = os.path.join(os.environ["AZ_BATCHAI_JOB_TEMP"], "prepared.txt")
    with open(marker) as handle:
        print(f"task {os.environ['AZ_BATCHAI_TASK_INDEX']} found: {handle.read().strip()}", flush=True)
"""

PREP_COMMAND = ('echo "preparing $AZ_BATCHAI_JOB_TEMP with $PREP_SETTING and a secret of ${#PREP_SECRET}"; '
                'echo "prepared in $AZ_BATCHAI_JOB_TEMP" > $AZ_BATCHAI_JOB_TEMP/prepared.txt')


def test_job_preparation_runs_on_every_node(shared_client, cluster, unique, tmp_path):
    script = write_script(tmp_path, "after_prep.py", PREP_TASK_SCRIPT)
    name = unique("prep")
    run_job(shared_client, name, cluster, {
        "nodeCount": 2,
        "environmentVariables": [{"name": "PREP_SETTING", "value": "setting-for-$AZ_BATCHAI_JOB_NAME"}],
        "secrets": [{"name": "PREP_SECRET", "value": "y" * 11}],
        "jobPreparation": {"commandLine": PREP_COMMAND},
        "caffe2Settings": {"pythonScriptFilePath": script, "pythonInterpreterPath": PYTHON},
    })
    nodes = [n["nodeId"] for n in job_nodes(shared_client, name)]
    assert len(set(nodes)) == 2, nodes
    files = list_files(shared_client, name)
    for node in nodes:
        for expected in (f"stdout-job_prep-{node}.txt", f"stderr-job_prep-{node}.txt", f"execution-{node}.log"):
            assert expected in files, (expected, sorted(files))
    assert "stdout-job_prep.txt" not in files and "execution.log" not in files, sorted(files)
    tasks = job_tasks(shared_client, name)
    prep = task_by_name(tasks, "prep")
    assert {t["node"] for t in prep.values()} == set(nodes), prep
    assert all(t["exitCode"] == 0 for t in prep.values()), prep
    main = task_by_name(tasks)
    for index, node in enumerate(nodes):
        prep_out = read_log(shared_client, name, f"stdout-job_prep-{node}.txt")
        match = re.fullmatch(rf"preparing (/\S+/{re.escape(node)}/\S+) with setting-for-{re.escape(name)}"
                             r" and a secret of 11\n", prep_out)
        assert match, prep_out
        job_temp = match.group(1)
        # The task on the same node saw the marker its preparation left in that node's job temp.
        assert read_log(shared_client, name, f"stdout-{index}.txt") == f"task {index} found: prepared in {job_temp}\n"
        assert main[str(index)]["node"] == node
        # The preparation ended before the task on its node started.
        assert when(prep[f"job_prep-{node}"]["endTime"]) <= when(main[str(index)]["startTime"])
        assert read_log(shared_client, name, f"execution-{node}.log").strip(), f"execution-{node}.log is empty"


def test_job_preparation_single_node_file_names(shared_client, unique):
    cluster = unique("prep1")
    make_cluster(shared_client, cluster, nodes=1)
    name = unique("prep1")
    run_job(shared_client, name, cluster, {
        "nodeCount": 1,
        "jobPreparation": {"commandLine": "echo prepared > $AZ_BATCHAI_JOB_TEMP/prepared.txt; echo prep done"},
        "customToolkitSettings": {"commandLine": "cat $AZ_BATCHAI_JOB_TEMP/prepared.txt"},
    })
    files = list_files(shared_client, name)
    assert {"stdout-job_prep.txt", "stderr-job_prep.txt", "execution.log", "stdout.txt"} <= set(files), sorted(files)
    assert not any(f.startswith("stdout-job_prep-") or f.startswith("execution-") for f in files), sorted(files)
    assert read_log(shared_client, name, "stdout-job_prep.txt") == "prep done\n"
    assert read_log(shared_client, name, "stdout.txt") == "prepared\n"
