"""Batch AI's toolkit recipes submitted as a Batch AI notebook did, with Microsoft's SDK through the ARM face:
TensorFlow parameter servers and workers, customMpi and CNTK's Python recipes run on two local nodes and
succeed; CNTK's BrainScript recipe fails for the reason it would here (no cntk on the nodes). Tiny scripts
stand in for the toolkits (none can be installed here); what they print is what each recipe relies on."""

from __future__ import annotations

import json
import shlex

import pytest
from azure.mgmt.batchai import models

from helpers.arm_sdk import manual_cluster, output_texts, wait_for_idle_nodes, wait_for_job_completion
from helpers.jobs import records, write_script
from helpers.toolkit_jobs import PYTHON, TF_SCRIPT
from helpers.tools import require_tool

RG, WS, EXP = "toolkit-rg", "recipes", "toolkits"

RANK_SCRIPT = """
    import json, os, sys
    record = {"tool": sys.argv[1], "rank": os.environ["OMPI_COMM_WORLD_RANK"],
              "size": os.environ["OMPI_COMM_WORLD_SIZE"], "node": os.environ["AZ_BATCHAI_NODE_NAME"] if
              "AZ_BATCHAI_NODE_NAME" in os.environ else os.environ.get("AZ_BATCH_NODE_ID", ""),
              "args": sys.argv[2:]}
    os.write(1, ("RECORD " + json.dumps(record) + "\\n").encode())  # one write: ranks share stdout.txt
"""


@pytest.fixture(scope="module")
def cluster(sdk) -> str:
    sdk.workspaces.begin_create(RG, WS, models.WorkspaceCreateParameters(location="eastus")).result()
    sdk.experiments.begin_create(RG, WS, EXP).result()
    made = sdk.clusters.begin_create(RG, WS, "two", manual_cluster(2)).result()
    wait_for_idle_nodes(sdk, RG, WS, "two", 2)
    return made.id


def run(sdk, name: str, cluster_id: str, **toolkit) -> tuple[models.Job, dict[str, str]]:
    parameters = models.JobCreateParameters(
        cluster=models.ResourceId(id=cluster_id),
        node_count=2,
        std_out_err_path_prefix="$AZ_BATCHAI_JOB_MOUNT_ROOT/afs",
        **toolkit,
    )
    sdk.jobs.begin_create(RG, WS, EXP, name, parameters).result()
    job = wait_for_job_completion(sdk, RG, WS, EXP, name)
    return job, output_texts(sdk, RG, WS, EXP, name)


def test_tensorflow_parameter_servers_and_workers(sdk, cluster, tmp_path):
    settings = models.TensorFlowSettings(
        python_script_file_path=write_script(tmp_path, "tf_task.py", TF_SCRIPT),
        python_interpreter_path=PYTHON,
        master_command_line_args="--role master",
        worker_command_line_args="--role worker",
        parameter_server_command_line_args="--role ps",
        worker_count=2,
        parameter_server_count=1,
    )
    job, logs = run(sdk, "tf", cluster, tensor_flow_settings=settings)
    assert job.tool_type == "tensorflow" and job.execution_state == "succeeded", (job.execution_info, logs)
    configs = {task: records(logs[f"stdout-{task}.txt"])[0]["tf_config"] for task in ("ps-0", "wk-0", "wk-1")}
    assert {task: (c["task"]["type"], c["task"]["index"]) for task, c in configs.items()} == {
        "ps-0": ("ps", 0),
        "wk-0": ("master", 0),
        "wk-1": ("worker", 1),
    }
    assert len(configs["wk-0"]["cluster"]["worker"]) == 2 and len(configs["wk-0"]["cluster"]["ps"]) == 1


def test_custom_mpi(sdk, cluster, tmp_path):
    require_tool("mpirun", "apt-get install openmpi-bin")
    script = write_script(tmp_path, "ranks.py", RANK_SCRIPT)
    settings = models.CustomMpiSettings(
        command_line=f"{shlex.quote(PYTHON)} {shlex.quote(script)} mpi --job $AZ_BATCHAI_JOB_NAME", process_count=2
    )
    job, logs = run(sdk, "mpi", cluster, custom_mpi_settings=settings)
    assert job.tool_type == models.ToolType.CUSTOMMPI and job.execution_state == "succeeded", (job.execution_info, logs)
    ranks = sorted(records(logs["stdout.txt"]), key=lambda r: r["rank"])
    assert [(r["rank"], r["size"], r["args"]) for r in ranks] == [(str(i), "2", ["--job", "mpi"]) for i in (0, 1)]


def test_cntk_python(sdk, cluster, tmp_path):
    require_tool("mpirun", "apt-get install openmpi-bin")
    settings = models.CNTKsettings(
        language_type="Python",
        python_script_file_path=write_script(tmp_path, "cntk_ranks.py", RANK_SCRIPT),
        python_interpreter_path=PYTHON,
        command_line_args="cntk --epochs 1",
        process_count=2,
    )
    job, logs = run(sdk, "cntk-python", cluster, cntk_settings=settings)
    assert job.tool_type == "cntk" and job.execution_state == "succeeded", (job.execution_info, logs)
    ranks = sorted(records(logs["stdout.txt"]), key=lambda r: r["rank"])
    assert [(r["tool"], r["rank"], r["args"]) for r in ranks] == [("cntk", str(i), ["--epochs", "1"]) for i in (0, 1)]


def test_cntk_brainscript_runs_cntk_and_fails_where_there_is_none(sdk, cluster, tmp_path):
    """The recipe is accepted and launched as Batch AI launched it (`cntk configFile=...` under mpirun); the
    job fails only because these nodes have no cntk, and its logs say so."""
    require_tool("mpirun", "apt-get install openmpi-bin")
    config = tmp_path / "ConvNet_MNIST.cntk"
    config.write_text("command = trainNetwork\n")
    settings = models.CNTKsettings(config_file_path=str(config), process_count=2)
    job, logs = run(sdk, "cntk-brainscript", cluster, cntk_settings=settings)
    assert job.tool_type == "cntk" and job.execution_state == "failed", json.dumps(logs)
    assert job.execution_info.exit_code != 0
    said = logs.get("stderr.txt", "") + logs.get("stdout.txt", "")
    assert "cntk" in said and ("not found" in said or "unable to find" in said), said


TASK_SCRIPT = """
    import json, os, sys
    print("RECORD " + json.dumps({"tool": sys.argv[1], "task": os.environ.get("AZ_BATCHAI_TASK_INDEX", ""),
                                  "args": sys.argv[2:]}), flush=True)
"""

# The other recipes' blocks: (SDK parameter, model, under mpirun, nodes)
OTHER_RECIPES = {
    "horovod": ("horovod_settings", models.HorovodSettings, True, 2),
    "chainer": ("chainer_settings", models.ChainerSettings, True, 2),
    "caffe": ("caffe_settings", models.CaffeSettings, True, 2),
    "caffe2": ("caffe2_settings", models.Caffe2Settings, False, 1),
    "pytorch": ("py_torch_settings", models.PyTorchSettings, False, 2),
}


@pytest.mark.parametrize("tool", sorted(OTHER_RECIPES))
def test_the_other_python_recipes(sdk, cluster, tmp_path, tool):
    parameter, model, under_mpi, nodes = OTHER_RECIPES[tool]
    if under_mpi:
        require_tool("mpirun", "apt-get install openmpi-bin")
    settings = model(
        python_script_file_path=write_script(tmp_path, f"{tool}.py", RANK_SCRIPT if under_mpi else TASK_SCRIPT),
        python_interpreter_path=PYTHON,
        command_line_args=f"{tool} --epochs 1",
        **({"process_count": 2} if under_mpi else {}),
    )
    parameters = models.JobCreateParameters(
        cluster=models.ResourceId(id=cluster),
        node_count=nodes,
        std_out_err_path_prefix="$AZ_BATCHAI_JOB_MOUNT_ROOT/afs",
        **{parameter: settings},
    )
    sdk.jobs.begin_create(RG, WS, EXP, tool, parameters).result()
    job = wait_for_job_completion(sdk, RG, WS, EXP, tool)
    logs = output_texts(sdk, RG, WS, EXP, tool)
    assert job.execution_state == "succeeded", (job.execution_info, logs)
    found = [r for name, text in sorted(logs.items()) if name.startswith("stdout") for r in records(text)]
    assert {(r["tool"], tuple(r["args"])) for r in found} == {(tool, ("--epochs", "1"))}, found
    assert len(found) == (2 if under_mpi or nodes == 2 else 1), found
