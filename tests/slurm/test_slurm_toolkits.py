"""The toolkits through a real Slurm: PyTorch DDP over gloo on two nodes, an MPI job, TensorFlow
ps/workers with TF_CONFIG, job preparation, and the env contract compared with the local backend's.

The checks are the local backend's own (tests/test_toolkits.py): the same files, variables and task
placement must come out of either backend.
"""

from __future__ import annotations

import json
import re
import shlex
import sys

import pytest

from batchai_jupyter.client import Client
from helpers.api import make_cluster, read_log
from helpers.jobs import job_nodes, job_tasks, list_files, logs_of, one_record, run_job, task_by_name, write_script
from helpers.service import TOKEN
from helpers.slurm import make_slurm_cluster
from helpers.toolkit_jobs import (
    DDP_ENV_SCRIPT,
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

PYTHON = sys.executable
JOB_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def hpc(slurm_service):
    """One Slurm cluster (the test Slurm's two nodes) for the module's jobs."""
    make_slurm_cluster(Client(slurm_service.url, TOKEN), "hpc")
    return "hpc"


def test_pytorch_ddp_two_nodes_over_gloo(slurm_client, hpc, unique, tmp_path):
    script = write_script(tmp_path, "ddp_env.py", DDP_ENV_SCRIPT)
    name = unique("ddp")
    run_job(
        slurm_client,
        name,
        hpc,
        {
            "nodeCount": 2,
            "outputDirectories": PYTORCH_OUTPUTS,
            "pyTorchSettings": {"pythonScriptFilePath": script, "communicationBackend": "gloo"},
        },
        timeout=JOB_TIMEOUT,
    )
    check_ddp_job(slurm_client, name)
    # MASTER_ADDR is the allocation's first node: n1's NodeAddr.
    nodes = job_nodes(slurm_client, name)
    assert [n["nodeId"] for n in nodes] == ["n1", "n2"], nodes
    init = one_record(read_log(slurm_client, name, "stdout-1.txt"))["init_method"]
    assert init.startswith(f"tcp://{nodes[0]['ipAddress']}:"), (init, nodes)


def test_custom_mpi_job_over_two_nodes(slurm_client, hpc, unique, tmp_path):
    name = unique("mpi")
    job = run_job(slurm_client, name, hpc, mpi4py_job(tmp_path), timeout=JOB_TIMEOUT)
    assert job["toolType"] == "customMpi"
    lines, expected = mpi4py_lines(slurm_client, name)
    assert lines == expected, logs_of(slurm_client, name)
    assert [t["name"] for t in job_tasks(slurm_client, name)] == ["master"]


def test_tensorflow_ps_and_workers_tf_config(slurm_client, hpc, unique, tmp_path):
    name = unique("tf")
    logs, tasks, nodes = run_tensorflow(slurm_client, hpc, name, tmp_path, chief=False)
    ps0, wk0, wk1 = check_tf_placement(logs, tasks, nodes)
    cluster_spec = {"ps": [ps0], "worker": [wk0, wk1]}
    assert logs["wk-0"]["tf_config"] == {
        "cluster": cluster_spec,
        "task": {"type": "master", "index": 0},
        "environment": "cloud",
    }
    assert logs["wk-1"]["tf_config"]["task"] == {"type": "worker", "index": 1}
    assert logs["ps-0"]["tf_config"]["task"] == {"type": "ps", "index": 0}


def test_job_preparation_is_a_first_step_on_every_node(slurm_client, hpc, unique, tmp_path):
    script = write_script(tmp_path, "after_prep.py", PREP_TASK_SCRIPT)
    name = unique("prep")
    run_job(
        slurm_client,
        name,
        hpc,
        {
            "nodeCount": 2,
            "environmentVariables": [{"name": "PREP_SETTING", "value": "setting-for-$AZ_BATCHAI_JOB_NAME"}],
            "secrets": [{"name": "PREP_SECRET", "value": "y" * 11}],
            "jobPreparation": {"commandLine": PREP_COMMAND},
            "caffe2Settings": {"pythonScriptFilePath": script, "pythonInterpreterPath": PYTHON},
        },
        timeout=JOB_TIMEOUT,
    )
    files = list_files(slurm_client, name)
    for node in ("n1", "n2"):
        for expected in (f"stdout-job_prep-{node}.txt", f"stderr-job_prep-{node}.txt", f"execution-{node}.log"):
            assert expected in files, (expected, sorted(files))
    tasks = job_tasks(slurm_client, name)
    prep, main = task_by_name(tasks, "prep"), task_by_name(tasks)
    assert {t["node"] for t in prep.values()} == {"n1", "n2"} and all(t["exitCode"] == 0 for t in prep.values())
    for index, node in enumerate(("n1", "n2")):
        prep_out = read_log(slurm_client, name, f"stdout-job_prep-{node}.txt")
        match = re.fullmatch(
            rf"preparing (/\S+/{node}/\S+) with setting-for-{re.escape(name)} and a secret of 11\n", prep_out
        )
        assert match, prep_out
        assert (
            read_log(slurm_client, name, f"stdout-{index}.txt") == f"task {index} found: prepared in {match.group(1)}\n"
        )
        assert main[str(index)]["node"] == node


def env_contract_job(client, cluster: str, name: str, script: str) -> tuple[dict, set[str]]:
    """Runs the env-dump job; returns its environment and the names of its stdouterr files."""
    run_job(
        client,
        name,
        cluster,
        {
            "nodeCount": 2,
            "inputDirectories": [{"id": "DATA", "path": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs/data"}],
            "outputDirectories": [{"id": "OUT", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external"}],
            "environmentVariables": [{"name": "RESULTS", "value": "$AZ_BATCHAI_OUTPUT_OUT/results"}],
            "secrets": [{"name": "API_KEY", "value": "not-for-logs"}],
            "customToolkitSettings": {"commandLine": f"{shlex.quote(PYTHON)} {shlex.quote(script)}"},
        },
        timeout=JOB_TIMEOUT,
    )
    record = one_record(read_log(client, name, "stdout.txt"))
    nodes = [n["nodeId"] for n in job_nodes(client, name)]
    files = {re.sub("|".join(map(re.escape, nodes)), "NODE", f) for f in list_files(client, name)}
    return record, files


def test_env_contract_same_as_local_backend(slurm_client, hpc, unique, tmp_path):
    script = write_script(tmp_path, "dump_env.py", ENV_DUMP_SCRIPT)
    local = unique("local")
    make_cluster(slurm_client, local, nodes=2)
    on_local, local_files = env_contract_job(slurm_client, local, unique("env-local"), script)
    on_slurm, slurm_files = env_contract_job(slurm_client, hpc, unique("env-slurm"), script)
    contract = {n for n in on_local["env"] if n.startswith(("AZ_BATCH", "RESULTS"))}
    assert contract == {n for n in on_slurm["env"] if n.startswith(("AZ_BATCH", "RESULTS"))}, sorted(
        contract ^ {n for n in on_slurm["env"] if n.startswith(("AZ_BATCH", "RESULTS"))}
    )
    assert local_files == slurm_files, (local_files, slurm_files)
    env, facts = on_slurm["env"], on_slurm["facts"]
    for name, value in facts.items():
        if name.endswith(":isdir"):
            assert value, f"{name} on the Slurm node"
    assert facts["cwd"] == env["AZ_BATCHAI_JOB_TEMP"] and "/n1/" in env["AZ_BATCHAI_JOB_TEMP"], facts
    assert env["AZ_BATCHAI_INPUT_DATA"] == env["AZ_BATCHAI_JOB_MOUNT_ROOT"] + "/afs/data"
    assert env["RESULTS"] == env["AZ_BATCHAI_OUTPUT_OUT"] + "/results"
    assert facts["hostfile"] == "n1 slots=1\nn2 slots=1\n", facts["hostfile"]
    assert facts["secret_sha256"] is not None
    assert env["SLURM_JOB_NUM_NODES"] == "2", "the task runs inside the Slurm allocation"
    assert env["SLURM_STEP_ID"].isdigit() and env["SLURM_STEP_NUM_TASKS"] == "1", "the task is an srun step of its own"
    assert json.dumps(on_slurm).count("not-for-logs") == 0
