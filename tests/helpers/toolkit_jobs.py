"""The toolkit jobs that run on both a local cluster (tests/test_toolkits.py) and a Slurm cluster
(tests/slurm/test_slurm_toolkits.py): the scripts they run and the checks of what they did."""

from __future__ import annotations

import importlib.util
import io
import shlex
import sys

import pytest

from .api import read_log
from .jobs import job_nodes, job_tasks, list_files, one_record, read_bytes, run_job, task_by_name, write_script
from .tools import require_tool

PYTHON = sys.executable


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

DDP_ENV_INIT = """
    import json, os
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")  # env://: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
    rank, world = dist.get_rank(), dist.get_world_size()
"""
DDP_ENV_SCRIPT = DDP_ENV_INIT + DDP_TRAINING


def check_ddp_job(client, name: str, on_hosts: bool = False) -> None:
    """`on_hosts`: the nodes are machines of their own (SSH hosts), each with the job's temp at one path."""
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
        if on_hosts:  # each rank on its own host, rank 1 reaching rank 0 at its host's address
            assert record["init_method"].startswith(f"tcp://{tasks['0']['ip']}:"), (record, tasks)
        else:  # each rank ran in its own node's job temp (the path names the node)
            assert f"/{tasks[str(rank)]['node']}/" in record["job_temp"], (record, tasks)
        losses.append(record["loss"])
    if on_hosts:
        assert tasks["0"]["ip"] != tasks["1"]["ip"], tasks
    assert losses[0] < 1.0, f"the model did not learn: loss {losses}"

    outputs = list_files(client, name, "MODEL")
    assert "model.pt" in outputs and outputs["model.pt"]["fileType"] == "file", outputs
    assert outputs["model.pt"]["contentLength"] > 0
    state = torch.load(io.BytesIO(read_bytes(client, name, "model.pt", "MODEL")), weights_only=True)
    assert set(state) == {"weight", "bias"} and tuple(state["weight"].shape) == (1, 4), state
    # Trained towards y = sum(x): every weight moved from its random start towards 1.
    assert torch.all(state["weight"] > 0.5), state


PYTORCH_OUTPUTS = [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external"}]


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


def mpi4py_job(tmp_path) -> dict:
    """A customMpi job of 2 ranks over 2 nodes running MPI4PY_SCRIPT, with a variable and a secret to see."""
    require_tool("mpirun", "apt-get install openmpi-bin")
    if importlib.util.find_spec("mpi4py") is None:
        pytest.fail("mpi4py is not installed for the tasks' Python; `pip install mpi4py` (needs libopenmpi-dev)")
    script = write_script(tmp_path, "mpi_allreduce.py", MPI4PY_SCRIPT)
    return {
        "nodeCount": 2,
        "environmentVariables": [{"name": "MPI_TAG", "value": "tag-$AZ_BATCHAI_JOB_NAME"}],
        "secrets": [{"name": "MPI_SECRET", "value": "x" * 17}],
        "customMpiSettings": {
            # $OMPI_COMM_WORLD_RANK is only known inside each rank: the rank's shell expands it.
            "commandLine": f"{shlex.quote(PYTHON)} {shlex.quote(script)} --shard $OMPI_COMM_WORLD_RANK",
            "processCount": 2,
        },
    }


def mpi4py_lines(client, name: str) -> tuple[list[str], list[str]]:
    """(the ranks' mpi4py lines in stdout.txt, sorted; the lines an mpi4py_job named `name` prints)."""
    lines = sorted(line for line in read_log(client, name, "stdout.txt").splitlines() if line.startswith("mpi4py "))
    expected = [
        f"mpi4py rank {rank} of 2 allreduce 3 ranks 0,1 job {name} tag tag-{name} secret length 17 argv --shard {rank}"
        for rank in (0, 1)
    ]
    return lines, expected


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
        "pythonScriptFilePath": script,
        "pythonInterpreterPath": PYTHON,
        "parameterServerCount": 1,
        "workerCount": 2,
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


PREP_TASK_SCRIPT = """
    import os
    marker = os.path.join(os.environ["AZ_BATCHAI_JOB_TEMP"], "prepared.txt")
    with open(marker) as handle:
        print(f"task {os.environ['AZ_BATCHAI_TASK_INDEX']} found: {handle.read().strip()}", flush=True)
"""

PREP_COMMAND = (
    'echo "preparing $AZ_BATCHAI_JOB_TEMP with $PREP_SETTING and a secret of ${#PREP_SECRET}"; '
    'echo "prepared in $AZ_BATCHAI_JOB_TEMP" > $AZ_BATCHAI_JOB_TEMP/prepared.txt'
)
