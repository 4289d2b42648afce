"""Every toolkit end to end on a real 2-node local cluster, through the REST API.

Real `batchai serve`, real processes, real PyTorch (gloo) DDP, real mpirun; no mocks. Each test
makes its own 2-node cluster on one service shared by the module, and checks what the Batch AI
contract promises (research contract sections 1, 4 and 5): the environment, how each toolkit is
launched across the nodes, and the stdout/stderr file names.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shlex
import sys
import uuid

import pytest

from helpers.api import make_cluster, read_log, submit, wait_job
from helpers.jobs import job_nodes, job_tasks, list_files, logs_of, one_record, run_job, task_by_name, write_script
from helpers.toolkit_jobs import (
    DDP_ENV_SCRIPT,
    DDP_TRAINING,
    ENV_DUMP_SCRIPT,
    PREP_COMMAND,
    PREP_TASK_SCRIPT,
    PYTORCH_OUTPUTS,
    check_ddp_job,
    check_tf_placement,
    mpi4py_job,
    mpi4py_lines,
    run_tensorflow,
)
from helpers.tools import require_tool

PYTHON = sys.executable
JOB_TIMEOUT = 120.0


# ---------------------------------------------------------------------------------------------
# Helpers (the scripts and checks shared with the Slurm toolkit tests are in helpers/toolkit_jobs.py)


def when(iso: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))


@pytest.fixture
def cluster(shared_client, unique):
    """A fresh 2-node local cluster on the module's service."""
    name = unique("tk")
    make_cluster(shared_client, name, nodes=2)
    return name


# ---------------------------------------------------------------------------------------------
# 1. PyTorch DDP over gloo


# The Batch AI PyTorch recipe: init_method from AZ_BATCHAI_PYTORCH_INIT_METHOD, rank from
# AZ_BATCHAI_TASK_INDEX and the world size passed by the job itself (Batch AI did not export it).
DDP_RECIPE_SCRIPT = (
    """
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
"""
    + DDP_TRAINING
)


def test_pytorch_ddp_gloo_env_init(shared_client, cluster, unique, tmp_path):
    script = write_script(tmp_path, "ddp_env.py", DDP_ENV_SCRIPT)
    name = unique("ddp-env")
    run_job(
        shared_client,
        name,
        cluster,
        {
            "nodeCount": 2,
            "outputDirectories": PYTORCH_OUTPUTS,
            "pyTorchSettings": {"pythonScriptFilePath": script, "communicationBackend": "gloo"},
        },
    )
    check_ddp_job(shared_client, name)


def test_pytorch_ddp_gloo_batchai_init_method(shared_client, cluster, unique, tmp_path):
    script = write_script(tmp_path, "ddp_recipe.py", DDP_RECIPE_SCRIPT)
    name = unique("ddp-recipe")
    job = run_job(
        shared_client,
        name,
        cluster,
        {
            "nodeCount": 2,
            "outputDirectories": PYTORCH_OUTPUTS,
            "pyTorchSettings": {
                "pythonScriptFilePath": script,
                "communicationBackend": "gloo",
                "commandLineArgs": "--world-size 2 --dist-backend $AZ_BATCHAI_PYTORCH_BACKEND"
                " --dist-url $AZ_BATCHAI_PYTORCH_INIT_METHOD --rank $AZ_BATCHAI_TASK_INDEX",
            },
        },
    )
    assert job["toolType"] == "pytorch"
    check_ddp_job(shared_client, name)
    init = one_record(read_log(shared_client, name, "stdout-1.txt"))["init_method"]
    assert re.fullmatch(r"(tcp|file)://\S+", init), init


# ---------------------------------------------------------------------------------------------
# 2. customMpi with mpi4py


def test_custom_mpi_mpi4py_two_ranks_over_two_nodes(shared_client, cluster, unique, tmp_path):
    name = unique("mpi")
    submit(shared_client, name, cluster, mpi4py_job(tmp_path))
    job = wait_job(shared_client, name, timeout=JOB_TIMEOUT)
    stderr = read_log(shared_client, name, "stderr.txt")
    if "MPI4PY_IMPORT_FAILED" in stderr:
        pytest.fail(f"mpi4py could not be imported inside the MPI ranks:\n{stderr}")
    assert job["executionState"] == "succeeded", f"{job['executionInfo']}\n{logs_of(shared_client, name)}"
    files = list_files(shared_client, name)
    assert "stdout.txt" in files and "stdout-0.txt" not in files, sorted(files)
    lines, expected = mpi4py_lines(shared_client, name)
    assert lines == expected, lines
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
    job = run_job(
        shared_client,
        name,
        cluster,
        {
            "nodeCount": 2,
            block: {
                "pythonScriptFilePath": script,
                "pythonInterpreterPath": PYTHON,
                "processCount": 2,
                "commandLineArgs": f"{toolkit} --job $AZ_BATCHAI_JOB_NAME",
                **extra,
            },
        },
    )
    assert job["toolType"] == toolkit
    files = list_files(shared_client, name)
    assert {"stdout.txt", "stderr.txt"} <= set(files) and "stdout-0.txt" not in files, sorted(files)
    stdouterr = shared_client.job("default", "default", name)["jobOutputDirectoryPathSegment"] + "/stdouterr"
    lines = sorted(
        line for line in read_log(shared_client, name, "stdout.txt").splitlines() if line.startswith(f"{toolkit} rank ")
    )
    assert len(lines) == 2, read_log(shared_client, name, "stdout.txt")
    for rank, line in enumerate(lines):
        assert line.startswith(f"{toolkit} rank {rank} size 2 args --job {name} stdouterr /"), line
        assert line.endswith(stdouterr), (line, stdouterr)


# ---------------------------------------------------------------------------------------------
# 4. TensorFlow parameter servers and workers


def test_tensorflow_ps_workers_batchai_tf_config(shared_client, cluster, unique, tmp_path):
    name = unique("tf")
    logs, tasks, nodes = run_tensorflow(shared_client, cluster, name, tmp_path, chief=False)
    ps0, wk0, wk1 = check_tf_placement(logs, tasks, nodes)
    assert logs["wk-0"]["args"] == ["--role", "master", "--job", name]
    cluster_spec = {"ps": [ps0], "worker": [wk0, wk1]}  # Batch AI's form: master is worker[0], no chief
    assert logs["wk-0"]["tf_config"] == {
        "cluster": cluster_spec,
        "task": {"type": "master", "index": 0},
        "environment": "cloud",
    }
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
    run_job(
        shared_client,
        name,
        cluster,
        {
            "nodeCount": 2,
            "caffe2Settings": {
                "pythonScriptFilePath": script,
                "pythonInterpreterPath": PYTHON,
                "commandLineArgs": "--shard_id $AZ_BATCHAI_TASK_INDEX --num_shards 2"
                " --file_store_path $AZ_BATCHAI_SHARED_JOB_TEMP",
            },
        },
    )
    files = list_files(shared_client, name)
    assert {"stdout-0.txt", "stdout-1.txt", "stderr-0.txt", "stderr-1.txt"} <= set(files), sorted(files)
    tasks = task_by_name(job_tasks(shared_client, name))
    nodes = [n["nodeId"] for n in job_nodes(shared_client, name)]
    assert [tasks["0"]["node"], tasks["1"]["node"]] == nodes and nodes[0] != nodes[1], (tasks, nodes)
    for shard in (0, 1):
        text = read_log(shared_client, name, f"stdout-{shard}.txt")
        peer = 1 - shard
        pattern = (
            rf"shard {shard} of 2 \(task index {shard}\) read: hello from shard {peer} "
            rf"in /\S+/{re.escape(nodes[peer])}/\S+"
        )
        assert re.fullmatch(pattern, text.strip()), text


# ---------------------------------------------------------------------------------------------
# 6. The environment contract, variable by variable


def test_job_environment_contract(shared_client, shared_service, unique, tmp_path):
    require_tool("mpirun", "apt-get install openmpi-bin")
    client = shared_client
    cluster = unique("env")
    make_cluster(client, cluster, nodes=2, gpusPerNode=2)
    script = write_script(tmp_path, "dump_env.py", ENV_DUMP_SCRIPT)
    secret = f"s3cr3t-{uuid.uuid4().hex}-$NOT_A_VAR"
    name = unique("env")
    mpirun = (
        "mpirun --allow-run-as-root --oversubscribe --hostfile $AZ_BATCHAI_MPI_HOST_FILE -np 2"
        " bash -c 'echo mpi-slot-$OMPI_COMM_WORLD_RANK'"
    )
    command = "; ".join(
        [
            'echo "nope=[$AZ_BATCHAI_INPUT_NOPE]"',
            "GREETING=hello sh -c 'echo greeting=$GREETING' | tr a-z A-Z",
            '[ -n "$API_KEY" ] && echo secret-seen-by-shell',
            f"{mpirun} | sort",
            f"{shlex.quote(PYTHON)} {shlex.quote(script)}",
        ]
    )
    run_job(
        client,
        name,
        cluster,
        {
            "nodeCount": 2,
            "inputDirectories": [
                {"id": "DATA", "path": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs/data"},
                {"id": "SCRIPTS", "path": str(tmp_path)},
            ],
            "outputDirectories": [{"id": "OUT", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external"}],
            "environmentVariables": [
                {"name": "RESULTS", "value": "$AZ_BATCHAI_OUTPUT_OUT/results"},
                {"name": "PLAIN", "value": "a value with spaces"},
            ],
            "secrets": [{"name": "API_KEY", "value": secret}],
            "customToolkitSettings": {"commandLine": command},
        },
    )
    stdout = read_log(client, name, "stdout.txt")
    lines = stdout.splitlines()
    # Shell features of the command line: `;`, `|`, `VAR=x cmd`, undefined input expands to "".
    assert lines[:5] == ["nope=[]", "GREETING=HELLO", "secret-seen-by-shell", "mpi-slot-0", "mpi-slot-1"], stdout
    record = one_record(stdout)
    env, facts = record["env"], record["facts"]

    nodes = job_nodes(client, name)
    assert len(nodes) == 2
    master = nodes[0]["nodeId"]
    directories = (
        "AZ_BATCHAI_MOUNT_ROOT",
        "AZ_BATCHAI_JOB_MOUNT_ROOT",
        "AZ_BATCHAI_JOB_TEMP",
        "AZ_BATCHAI_JOB_TEMP_DIR",
        "AZ_BATCHAI_SHARED_JOB_TEMP",
        "AZ_BATCHAI_STDOUTERR_DIR",
        "AZ_BATCHAI_OUTPUT_OUT",
    )
    for variable in (*directories, "AZ_BATCHAI_INPUT_DATA", "AZ_BATCHAI_MPI_HOST_FILE"):
        assert os.path.isabs(env[variable]), (variable, env.get(variable))
    for variable in directories:
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
    assert (
        os.path.commonpath([env["AZ_BATCHAI_JOB_TEMP"], env["AZ_BATCHAI_JOB_TEMP_DIR"]])
        == env["AZ_BATCHAI_JOB_TEMP_DIR"]
        != env["AZ_BATCHAI_JOB_TEMP"]
    )
    assert env["AZ_BATCHAI_SHARED_JOB_TEMP"] not in (env["AZ_BATCHAI_JOB_TEMP"], env["AZ_BATCHAI_JOB_TEMP_DIR"])
    # stdout/stderr: the directory stdout.txt is written to, at <segment>/stdouterr (contract section 5).
    segment = client.job("default", "default", name)["jobOutputDirectoryPathSegment"]
    assert env["AZ_BATCHAI_STDOUTERR_DIR"].endswith("/" + segment + "/stdouterr"), (
        env["AZ_BATCHAI_STDOUTERR_DIR"],
        segment,
    )
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


def test_job_preparation_runs_on_every_node(shared_client, cluster, unique, tmp_path):
    script = write_script(tmp_path, "after_prep.py", PREP_TASK_SCRIPT)
    name = unique("prep")
    run_job(
        shared_client,
        name,
        cluster,
        {
            "nodeCount": 2,
            "environmentVariables": [{"name": "PREP_SETTING", "value": "setting-for-$AZ_BATCHAI_JOB_NAME"}],
            "secrets": [{"name": "PREP_SECRET", "value": "y" * 11}],
            "jobPreparation": {"commandLine": PREP_COMMAND},
            "caffe2Settings": {"pythonScriptFilePath": script, "pythonInterpreterPath": PYTHON},
        },
    )
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
        match = re.fullmatch(
            rf"preparing (/\S+/{re.escape(node)}/\S+) with setting-for-{re.escape(name)}"
            r" and a secret of 11\n",
            prep_out,
        )
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
    run_job(
        shared_client,
        name,
        cluster,
        {
            "nodeCount": 1,
            "jobPreparation": {"commandLine": "echo prepared > $AZ_BATCHAI_JOB_TEMP/prepared.txt; echo prep done"},
            "customToolkitSettings": {"commandLine": "cat $AZ_BATCHAI_JOB_TEMP/prepared.txt"},
        },
    )
    files = list_files(shared_client, name)
    assert {"stdout-job_prep.txt", "stderr-job_prep.txt", "execution.log", "stdout.txt"} <= set(files), sorted(files)
    assert not any(f.startswith("stdout-job_prep-") or f.startswith("execution-") for f in files), sorted(files)
    assert read_log(shared_client, name, "stdout-job_prep.txt") == "prep done\n"
    assert read_log(shared_client, name, "stdout.txt") == "prepared\n"
