"""Task plans per toolkit: names, placement, commands, environment, hostfile (contract §1, §4, §5)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess

import pytest

from batchai_jupyter.core.launch import (
    JobContext,
    NodeContext,
    TaskPlan,
    execution_log_name,
    expand_vars,
    hostfile_text,
    node_environment,
    plan_job_preparation,
    plan_tasks,
    processes_per_node,
)
from batchai_jupyter.core.models import TOOLKITS, JobSpec, ToolkitSettings

HOSTFILE = "/jobs/j1/hostfile"


def make_node(
    index: int, *, ip: str | None = None, mpi_host: str | None = None, cpus: int = 4, gpus: int = 0
) -> NodeContext:
    return NodeContext(
        name=f"tvm-c1-{index}",
        index=index,
        ip=ip or f"10.0.0.{4 + index}",
        mpi_host=mpi_host or f"host{index}",
        cpus=cpus,
        gpus=gpus,
        mount_root=f"/n{index}/mounts",
        job_temp_dir=f"/n{index}/jobs",
        job_temp=f"/n{index}/jobs/j1",
        job_mount_root=f"/n{index}/jobs/j1/mounts",
    )


def make_nodes(count: int, **kwargs) -> list[NodeContext]:
    return [make_node(i, **kwargs) for i in range(count)]


def make_job(toolkit: ToolkitSettings, node_count: int = 1, **spec_fields) -> JobContext:
    spec = JobSpec(
        name="j1", cluster="c1", toolkit=toolkit, node_count=node_count, workspace="ws", experiment="exp", **spec_fields
    )
    return JobContext(
        spec=spec,
        attempt=1,
        stdouterr_dir="/store/exp/j1/u1/stdouterr",
        shared_job_temp="/shared/j1",
        input_paths={},
        output_paths={},
        hostfile=HOSTFILE,
        master_port=29500,
    )


def with_paths(job: JobContext, inputs: dict[str, str], outputs: dict[str, str]) -> JobContext:
    return JobContext(**{**job.__dict__, "input_paths": inputs, "output_paths": outputs})


def script_toolkit(kind: str, **fields) -> ToolkitSettings:
    return ToolkitSettings(kind=kind, python_script="train.py", **fields)


def minimal_toolkit(kind: str) -> ToolkitSettings:
    if kind in ("custom", "customMpi"):
        return ToolkitSettings(kind=kind, command_line="echo hi")
    if kind == "caffe":
        return ToolkitSettings(kind=kind, config_file="solver.prototxt")
    return script_toolkit(kind)


def plan(toolkit: ToolkitSettings, node_count: int = 1, **spec_fields) -> list[TaskPlan]:
    return plan_tasks(make_job(toolkit, node_count, **spec_fields), make_nodes(node_count))


def mpirun_parts(command: str) -> tuple[list[str], list[str], list[str]]:
    """(options before the program, forwarded names, program words) of a generated mpirun line."""
    words = shlex.split(command)
    forwarded = [words[i + 1] for i, word in enumerate(words) if word == "-x"]
    program_start = max(i for i, word in enumerate(words) if word == "-x") + 2
    options = [w for w in words[:program_start] if w != "-x" and w not in forwarded]
    return options, forwarded, words[program_start:]


# ------------------------------------------------------------------------------------------
# expand_vars


@pytest.mark.parametrize(
    "text, expected",
    [
        ("$A", "1"),
        ("${A}", "1"),
        ("${A}x", "1x"),
        ("$A$B", "12"),
        ("$A_B", "3"),
        ("$MISSING", ""),
        ("a${MISSING}b", "ab"),
        ("${}", "${}"),
        ("$$", "$$"),
        ("$$A", "$$A"),
        ("cost $ 5", "cost $ 5"),
        ("ends with $", "ends with $"),
        ("$1 $?", "$1 $?"),
        ("${A:-x}", "${A:-x}"),
        ("${A", "${A"),
        ("no vars", "no vars"),
    ],
)
def test_expand_vars(text: str, expected: str) -> None:
    assert expand_vars(text, {"A": "1", "B": "2", "A_B": "3"}) == expected


def test_expand_vars_keep_undefined_leaves_unknown_names_for_the_shell() -> None:
    assert (
        expand_vars("$A $OMPI_COMM_WORLD_RANK ${HOME}", {"A": "1"}, keep_undefined=True)
        == "1 $OMPI_COMM_WORLD_RANK ${HOME}"
    )


def test_expand_vars_does_not_re_expand_values() -> None:
    assert expand_vars("$A", {"A": "$B", "B": "no"}) == "$B"


# ------------------------------------------------------------------------------------------
# node_environment


def test_node_environment_has_every_contract_variable() -> None:
    nodes = make_nodes(2, gpus=2)
    job = with_paths(
        make_job(minimal_toolkit("custom"), 2),
        inputs={"DATASET": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs/mnist"},
        outputs={"MODEL": "/store/exp/j1/u1/outputs/Models"},
    )
    env = node_environment(job, nodes, nodes[1])
    assert env == {
        "AZ_BATCHAI_MOUNT_ROOT": "/n1/mounts",
        "AZ_BATCHAI_JOB_MOUNT_ROOT": "/n1/jobs/j1/mounts",
        "AZ_BATCHAI_JOB_TEMP": "/n1/jobs/j1",
        "AZ_BATCHAI_JOB_TEMP_DIR": "/n1/jobs",
        "AZ_BATCHAI_SHARED_JOB_TEMP": "/shared/j1",
        "AZ_BATCHAI_STDOUTERR_DIR": "/store/exp/j1/u1/stdouterr",
        "AZ_BATCHAI_MPI_HOST_FILE": HOSTFILE,
        "AZ_BATCHAI_NUM_GPUS": "2",
        "AZ_BATCHAI_NUM_GPUS_PER_NODE": "2",
        "AZ_BATCH_HOST_LIST": "10.0.0.4,10.0.0.5",
        "AZ_BATCHAI_JOB_NAME": "j1",
        "AZ_BATCHAI_EXPERIMENT_NAME": "exp",
        "AZ_BATCHAI_WORKSPACE_NAME": "ws",
        "AZ_BATCHAI_JOB_ATTEMPT": "1",
        "AZ_BATCHAI_NODE_IP": "10.0.0.5",
        "AZ_BATCHAI_INPUT_DATASET": "/n1/jobs/j1/mounts/afs/mnist",
        "AZ_BATCHAI_OUTPUT_MODEL": "/store/exp/j1/u1/outputs/Models",
    }


def test_input_ids_are_upper_cased_as_batch_ai_did_and_kept_as_written() -> None:
    nodes = make_nodes(1)
    job = with_paths(
        make_job(minimal_toolkit("custom")),
        inputs={"train": "/data/train", "Eval": "/data/eval", "ckpt": "/data/lower", "CKPT": "/data/upper"},
        outputs={},
    )
    env = node_environment(job, nodes, nodes[0])
    assert env["AZ_BATCHAI_INPUT_TRAIN"] == env["AZ_BATCHAI_INPUT_train"] == "/data/train"
    assert env["AZ_BATCHAI_INPUT_EVAL"] == env["AZ_BATCHAI_INPUT_Eval"] == "/data/eval"
    # An id written in upper case is that input's own name: it wins over another id's upper-cased one.
    assert env["AZ_BATCHAI_INPUT_CKPT"] == "/data/upper"
    assert env["AZ_BATCHAI_INPUT_ckpt"] == "/data/lower"


def test_user_env_expands_against_contract_and_earlier_user_vars_then_secrets() -> None:
    nodes = make_nodes(1)
    job = with_paths(
        make_job(
            minimal_toolkit("custom"),
            environment={
                "MODEL_DIR": "$AZ_BATCHAI_OUTPUT_X/models",
                "CKPT": "${MODEL_DIR}/ckpt",
                "UNSET": "[$NOPE]",
                "LATER": "$SECRET_KEY",
            },
            secrets={"SECRET_KEY": "pa$$w$rd"},
        ),
        inputs={},
        outputs={"X": "/out/x"},
    )
    env = node_environment(job, nodes, nodes[0])
    assert env["MODEL_DIR"] == "/out/x/models"
    assert env["CKPT"] == "/out/x/models/ckpt"
    assert env["UNSET"] == "[]"
    assert env["LATER"] == ""  # secrets come after the environment
    assert env["SECRET_KEY"] == "pa$$w$rd"  # secret values are never expanded
    assert list(env)[-5:] == ["MODEL_DIR", "CKPT", "UNSET", "LATER", "SECRET_KEY"]


def test_job_attempt_is_the_run_number() -> None:
    nodes = make_nodes(1)
    job = JobContext(**{**make_job(minimal_toolkit("custom")).__dict__, "attempt": 3})
    assert node_environment(job, nodes, nodes[0])["AZ_BATCHAI_JOB_ATTEMPT"] == "3"


def test_secrets_reach_task_env_but_not_the_command_line() -> None:
    toolkit = ToolkitSettings(kind="custom", command_line="curl -u me:$TOKEN $AZ_BATCHAI_JOB_NAME")
    [task] = plan(toolkit, secrets={"TOKEN": "s3cret"})
    assert task.env["TOKEN"] == "s3cret"
    assert task.command == "curl -u me:$TOKEN j1"
    assert "s3cret" not in task.command


# ------------------------------------------------------------------------------------------
# placement and hostfile


@pytest.mark.parametrize(
    "total, count, expected",
    [
        (5, 2, [3, 2]),
        (4, 2, [2, 2]),
        (1, 2, [1, 0]),
        (7, 3, [3, 2, 2]),
        (2, 1, [2]),
        (0, 2, [0, 0]),
    ],
)
def test_processes_per_node(total: int, count: int, expected: list[int]) -> None:
    assert processes_per_node(total, count) == expected


def test_processes_per_node_rejects_no_nodes() -> None:
    with pytest.raises(ValueError, match="node count"):
        processes_per_node(2, 0)


def test_hostfile_merges_duplicate_localhost() -> None:
    nodes = make_nodes(2, mpi_host="localhost")
    job = make_job(ToolkitSettings(kind="customMpi", command_line="x", process_count=5), 2)
    assert hostfile_text(job, nodes) == "localhost slots=5\n"


def test_hostfile_lists_distinct_hosts_with_their_placed_processes() -> None:
    nodes = make_nodes(2)
    job = make_job(script_toolkit("horovod", process_count=5), 2)
    assert hostfile_text(job, nodes) == "host0 slots=3\nhost1 slots=2\n"


def test_hostfile_merges_only_equal_names_and_keeps_node_order() -> None:
    nodes = [make_node(0, mpi_host="b"), make_node(1, mpi_host="a"), make_node(2, mpi_host="b")]
    job = make_job(script_toolkit("chainer", process_count=3), 3)
    assert hostfile_text(job, nodes) == "b slots=2\na slots=1\n"


def test_hostfile_of_non_mpi_toolkit_offers_node_cpus() -> None:
    nodes = make_nodes(2, cpus=8)
    job = make_job(minimal_toolkit("custom"), 2)
    assert hostfile_text(job, nodes) == "host0 slots=8\nhost1 slots=8\n"


def test_hostfile_of_mpi_caffe_uses_placement() -> None:
    nodes = make_nodes(2, cpus=8)
    job = make_job(ToolkitSettings(kind="caffe", config_file="s.prototxt", process_count=4), 2)
    assert hostfile_text(job, nodes) == "host0 slots=2\nhost1 slots=2\n"


# ------------------------------------------------------------------------------------------
# every toolkit: shape of the plan on 1 and 2 nodes


EXPECTED_NAMES = {
    ("custom", 1): ["master"],
    ("custom", 2): ["master"],
    ("customMpi", 1): ["master"],
    ("customMpi", 2): ["master"],
    ("horovod", 1): ["master"],
    ("horovod", 2): ["master"],
    ("chainer", 1): ["master"],
    ("chainer", 2): ["master"],
    ("cntk", 1): ["master"],
    ("cntk", 2): ["master"],
    ("caffe", 1): ["master"],
    ("caffe", 2): ["master"],
    ("pytorch", 1): ["0"],
    ("pytorch", 2): ["0", "1"],
    ("caffe2", 1): ["0"],
    ("caffe2", 2): ["0", "1"],
    ("tensorflow", 1): ["wk-0"],
    ("tensorflow", 2): ["ps-0", "wk-0", "wk-1"],
}


@pytest.mark.parametrize("kind, node_count", sorted(EXPECTED_NAMES))
def test_plan_shape_per_toolkit(kind: str, node_count: int) -> None:
    tasks = plan(minimal_toolkit(kind), node_count)
    names = [t.name for t in tasks]
    assert names == EXPECTED_NAMES[kind, node_count]
    for task in tasks:
        suffix = "" if task.name == "master" else f"-{task.name}"
        assert (task.stdout_name, task.stderr_name) == (f"stdout{suffix}.txt", f"stderr{suffix}.txt")
        assert task.env["AZ_BATCHAI_JOB_NAME"] == "j1"
        assert task.env["AZ_BATCHAI_JOB_TEMP"] == f"/n{task.node_index}/jobs/j1"
        assert task.required == (task.role != "ps")


def test_all_toolkits_are_covered() -> None:
    assert {kind for kind, _ in EXPECTED_NAMES} == set(TOOLKITS)


def test_custom_runs_the_expanded_command_line_once_on_the_master() -> None:
    toolkit = ToolkitSettings(kind="custom", command_line="python a.py --out $AZ_BATCHAI_JOB_TEMP; ls $UNKNOWN")
    [task] = plan(toolkit, 2)
    assert (task.node_index, task.role, task.index) == (0, "master", 0)
    assert task.command == "python a.py --out /n0/jobs/j1; ls $UNKNOWN"


@pytest.mark.parametrize("node_count", [1, 2])
def test_custom_mpi_wraps_the_command_line_in_mpirun(node_count: int) -> None:
    toolkit = ToolkitSettings(kind="customMpi", command_line="echo $OMPI_COMM_WORLD_RANK > '$AZ_BATCHAI_JOB_NAME out'")
    [task] = plan(toolkit, node_count)
    options, forwarded, program = mpirun_parts(task.command)
    assert options == [
        "mpirun",
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
        str(node_count),
        "--hostfile",
        HOSTFILE,
        "--bind-to",
        "none",
    ]
    assert forwarded == list(task.env)
    assert program == ["bash", "-c", "echo $OMPI_COMM_WORLD_RANK > 'j1 out'"]


def test_mpi_process_count_and_paths_with_spaces_are_quoted() -> None:
    job = make_job(
        script_toolkit(
            "horovod",
            process_count=8,
            python_interpreter="/opt/my env/python",
            args="--epochs 2 --data $AZ_BATCHAI_SHARED_JOB_TEMP",
        ),
        2,
    )
    job = JobContext(**{**job.__dict__, "hostfile": "/jobs/a b/hostfile", "mpirun": "/opt/mpi x/mpirun"})
    [task] = plan_tasks(job, make_nodes(2))
    options, _, program = mpirun_parts(task.command)
    assert options[0] == "/opt/mpi x/mpirun"
    assert options[options.index("-np") + 1] == "8"
    assert options[options.index("--hostfile") + 1] == "/jobs/a b/hostfile"
    assert program == ["/opt/my env/python", "train.py", "--epochs", "2", "--data", "/shared/j1"]


@pytest.mark.parametrize("kind", ["horovod", "chainer"])
def test_python_mpi_toolkits_run_the_script_under_mpirun(kind: str) -> None:
    [task] = plan(script_toolkit(kind, args="--lr 0.1"), 2)
    _, _, program = mpirun_parts(task.command)
    assert program == ["python", "train.py", "--lr", "0.1"]


def test_cntk_python_runs_the_script() -> None:
    [task] = plan(script_toolkit("cntk", language="Python", args="-e 2"), 2)
    assert mpirun_parts(task.command)[2] == ["python", "train.py", "-e", "2"]


@pytest.mark.parametrize("language", ["BrainScript", ""])
def test_cntk_brainscript_runs_cntk_with_the_config_file(language: str) -> None:
    toolkit = ToolkitSettings(
        kind="cntk", language=language, config_file="$AZ_BATCHAI_INPUT_S/conv.cntk", args="rootDir=. parallelTrain=true"
    )
    job = with_paths(make_job(toolkit, 2), inputs={"S": "/data/scripts"}, outputs={})
    [task] = plan_tasks(job, make_nodes(2))
    assert mpirun_parts(task.command)[2] == [
        "cntk",
        "configFile=/data/scripts/conv.cntk",
        "rootDir=.",
        "parallelTrain=true",
    ]


def test_caffe_single_process_trains_with_the_solver_without_mpirun() -> None:
    [task] = plan(ToolkitSettings(kind="caffe", config_file="lenet solver.prototxt", args="--gpu all"))
    assert shlex.split(task.command) == ["caffe", "train", "--solver=lenet solver.prototxt", "--gpu", "all"]


def test_caffe_python_script_with_several_processes_is_wrapped_in_mpirun() -> None:
    [task] = plan(script_toolkit("caffe", process_count=2))
    options, _, program = mpirun_parts(task.command)
    assert options[options.index("-np") + 1] == "2"
    assert program == ["python", "train.py"]


def test_caffe_on_two_nodes_defaults_to_one_process_per_node_under_mpirun() -> None:
    [task] = plan(ToolkitSettings(kind="caffe", config_file="s.prototxt"), 2)
    assert mpirun_parts(task.command)[0][4] == "2"


# ------------------------------------------------------------------------------------------
# pytorch


def test_pytorch_four_ranks_on_two_nodes() -> None:
    tasks = plan(
        script_toolkit("pytorch", process_count=4, args="--rank $AZ_BATCHAI_TASK_INDEX", communication_backend="nccl"),
        2,
    )
    assert [(t.name, t.node_index, t.role, t.index) for t in tasks] == [
        ("0", 0, "rank", 0),
        ("1", 0, "rank", 1),
        ("2", 1, "rank", 2),
        ("3", 1, "rank", 3),
    ]
    for task in tasks:
        rank = task.index
        assert task.command == f"python train.py --rank {rank}"
        assert task.stdout_name == f"stdout-{rank}.txt" and task.stderr_name == f"stderr-{rank}.txt"
        assert {
            k: task.env[k]
            for k in (
                "AZ_BATCHAI_TASK_INDEX",
                "AZ_BATCHAI_PYTORCH_BACKEND",
                "AZ_BATCHAI_PYTORCH_INIT_METHOD",
                "MASTER_ADDR",
                "MASTER_PORT",
                "RANK",
                "WORLD_SIZE",
                "LOCAL_RANK",
                "LOCAL_WORLD_SIZE",
                "GROUP_RANK",
            )
        } == {
            "AZ_BATCHAI_TASK_INDEX": str(rank),
            "AZ_BATCHAI_PYTORCH_BACKEND": "nccl",
            "AZ_BATCHAI_PYTORCH_INIT_METHOD": "tcp://10.0.0.4:29500",
            "MASTER_ADDR": "10.0.0.4",
            "MASTER_PORT": "29500",
            "RANK": str(rank),
            "WORLD_SIZE": "4",
            "LOCAL_RANK": str(rank % 2),
            "LOCAL_WORLD_SIZE": "2",
            "GROUP_RANK": str(rank // 2),
        }
        assert task.env["AZ_BATCHAI_JOB_TEMP"] == f"/n{rank // 2}/jobs/j1"


def test_pytorch_defaults_to_one_rank_per_node_with_gloo() -> None:
    tasks = plan(script_toolkit("pytorch"), 2)
    assert [(t.node_index, t.env["RANK"], t.env["LOCAL_RANK"], t.env["WORLD_SIZE"]) for t in tasks] == [
        (0, "0", "0", "2"),
        (1, "1", "0", "2"),
    ]
    assert tasks[0].env["AZ_BATCHAI_PYTORCH_BACKEND"] == "gloo"


def test_pytorch_uneven_ranks_use_block_placement() -> None:
    tasks = plan(script_toolkit("pytorch", process_count=3), 2)
    assert [(t.node_index, t.env["LOCAL_RANK"], t.env["LOCAL_WORLD_SIZE"]) for t in tasks] == [
        (0, "0", "2"),
        (0, "1", "2"),
        (1, "0", "1"),
    ]


# ------------------------------------------------------------------------------------------
# tensorflow


def tf_plan(node_count: int, **fields) -> dict[str, TaskPlan]:
    toolkit = script_toolkit("tensorflow", master_args="--m", worker_args="--w", ps_args="--p", **fields)
    return {t.name: t for t in plan(toolkit, node_count)}


def test_tensorflow_two_nodes_places_ps_then_workers_like_batch_ai() -> None:
    tasks = tf_plan(2)
    assert [(n, t.node_index, t.role, t.index, t.required) for n, t in tasks.items()] == [
        ("ps-0", 0, "ps", 0, False),
        ("wk-0", 0, "worker", 0, True),
        ("wk-1", 1, "worker", 1, True),
    ]
    for task in tasks.values():
        assert task.env["AZ_BATCHAI_PS_HOSTS"] == "10.0.0.4:2222"
        assert task.env["AZ_BATCHAI_WORKER_HOSTS"] == "10.0.0.4:2223,10.0.0.5:2222"
        assert task.env["AZ_BATCHAI_TASK_INDEX"] == str(task.index)
    assert tasks["ps-0"].command == "python train.py --p"
    assert tasks["wk-0"].command == "python train.py --m"
    assert tasks["wk-1"].command == "python train.py --w"
    assert tasks["ps-0"].stdout_name == "stdout-ps-0.txt"
    assert tasks["wk-1"].stderr_name == "stderr-wk-1.txt"


def test_tensorflow_tf_config_batch_ai_form() -> None:
    tasks = tf_plan(2)
    cluster = {"ps": ["10.0.0.4:2222"], "worker": ["10.0.0.4:2223", "10.0.0.5:2222"]}
    expected = {
        "ps-0": {"type": "ps", "index": 0},
        "wk-0": {"type": "master", "index": 0},
        "wk-1": {"type": "worker", "index": 1},
    }
    for name, task_entry in expected.items():
        raw = tasks[name].env["TF_CONFIG"]
        assert raw == json.dumps({"cluster": cluster, "task": task_entry, "environment": "cloud"})


def test_tensorflow_tf_config_chief_form() -> None:
    tasks = tf_plan(2, tf_config_chief=True, worker_count=3)
    cluster = {"chief": ["10.0.0.4:2223"], "worker": ["10.0.0.5:2222", "10.0.0.4:2224"], "ps": ["10.0.0.4:2222"]}
    expected = {
        "ps-0": {"type": "ps", "index": 0},
        "wk-0": {"type": "chief", "index": 0},
        "wk-1": {"type": "worker", "index": 0},
        "wk-2": {"type": "worker", "index": 1},
    }
    for name, task_entry in expected.items():
        config = json.loads(tasks[name].env["TF_CONFIG"])
        assert config == {"cluster": cluster, "task": task_entry, "environment": "cloud"}
    assert tasks["wk-2"].env["AZ_BATCHAI_TASK_INDEX"] == "2"


def test_tensorflow_single_node_runs_one_worker_without_ps() -> None:
    tasks = tf_plan(1)
    assert list(tasks) == ["wk-0"]
    task = tasks["wk-0"]
    assert task.command == "python train.py --m"
    assert task.env["AZ_BATCHAI_PS_HOSTS"] == ""
    assert json.loads(task.env["TF_CONFIG"]) == {
        "cluster": {"worker": ["10.0.0.4:2222"]},
        "task": {"type": "master", "index": 0},
        "environment": "cloud",
    }


def test_tensorflow_explicit_counts_and_ports_per_node() -> None:
    tasks = tf_plan(2, ps_count=2, worker_count=3)
    assert tasks["ps-0"].env["AZ_BATCHAI_PS_HOSTS"] == "10.0.0.4:2222,10.0.0.5:2222"
    assert tasks["ps-0"].env["AZ_BATCHAI_WORKER_HOSTS"] == "10.0.0.4:2223,10.0.0.5:2223,10.0.0.4:2224"
    assert [t.node_index for t in tasks.values()] == [0, 1, 0, 1, 0]


def test_tensorflow_single_node_several_workers_is_distributed() -> None:
    tasks = tf_plan(1, worker_count=2)
    assert list(tasks) == ["ps-0", "wk-0", "wk-1"]
    assert tasks["wk-1"].env["AZ_BATCHAI_WORKER_HOSTS"] == "10.0.0.4:2223,10.0.0.4:2224"


def test_tensorflow_nodes_sharing_an_address_get_distinct_ports() -> None:
    job = make_job(script_toolkit("tensorflow"), 2)
    tasks = plan_tasks(job, make_nodes(2, ip="127.0.0.1"))
    config = json.loads(tasks[0].env["TF_CONFIG"])
    addresses = config["cluster"]["ps"] + config["cluster"]["worker"]
    assert addresses == ["127.0.0.1:2222", "127.0.0.1:2223", "127.0.0.1:2224"]


def test_tensorflow_zero_ps_omits_the_ps_key() -> None:
    tasks = tf_plan(2, ps_count=0)
    assert list(tasks) == ["wk-0", "wk-1"]
    assert json.loads(tasks["wk-1"].env["TF_CONFIG"])["cluster"] == {"worker": ["10.0.0.4:2222", "10.0.0.5:2222"]}


# ------------------------------------------------------------------------------------------
# caffe2


def test_caffe2_one_shard_per_node() -> None:
    tasks = plan(
        script_toolkit(
            "caffe2", args="--shard_id $AZ_BATCHAI_TASK_INDEX --file_store_path $AZ_BATCHAI_SHARED_JOB_TEMP"
        ),
        2,
    )
    assert [(t.name, t.node_index, t.role, t.env["AZ_BATCHAI_TASK_INDEX"]) for t in tasks] == [
        ("0", 0, "rank", "0"),
        ("1", 1, "rank", "1"),
    ]
    assert tasks[1].command == "python train.py --shard_id 1 --file_store_path /shared/j1"
    assert tasks[1].stdout_name == "stdout-1.txt"
    assert "WORLD_SIZE" not in tasks[1].env


# ------------------------------------------------------------------------------------------
# job preparation and service log names


def test_no_job_preparation_plans_nothing() -> None:
    assert plan_job_preparation(make_job(minimal_toolkit("custom"), 2), make_nodes(2)) == []


def test_job_preparation_on_one_node() -> None:
    job = make_job(
        minimal_toolkit("custom"), job_preparation="cd $AZ_BATCHAI_JOB_TEMP && git clone x", secrets={"S": "v"}
    )
    [task] = plan_job_preparation(job, make_nodes(1))
    assert (task.name, task.role, task.node_index) == ("job_prep", "prep", 0)
    assert (task.stdout_name, task.stderr_name) == ("stdout-job_prep.txt", "stderr-job_prep.txt")
    assert task.command == "cd /n0/jobs/j1 && git clone x"
    assert task.env["S"] == "v"


def test_job_preparation_on_two_nodes_is_named_per_node() -> None:
    job = make_job(minimal_toolkit("custom"), 2, job_preparation="echo $AZ_BATCHAI_JOB_TEMP")
    tasks = plan_job_preparation(job, make_nodes(2))
    assert [(t.name, t.node_index, t.index, t.stdout_name, t.stderr_name, t.command) for t in tasks] == [
        ("job_prep-tvm-c1-0", 0, 0, "stdout-job_prep-tvm-c1-0.txt", "stderr-job_prep-tvm-c1-0.txt", "echo /n0/jobs/j1"),
        ("job_prep-tvm-c1-1", 1, 1, "stdout-job_prep-tvm-c1-1.txt", "stderr-job_prep-tvm-c1-1.txt", "echo /n1/jobs/j1"),
    ]


def test_execution_log_name() -> None:
    node = make_node(1)
    assert execution_log_name(node, 1) == "execution.log"
    assert execution_log_name(node, 2) == "execution-tvm-c1-1.log"


# ------------------------------------------------------------------------------------------
# errors


def test_node_count_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="nodeCount 2 but 1 node"):
        plan_tasks(make_job(minimal_toolkit("custom"), 2), make_nodes(1))


def test_unknown_toolkit_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown toolkit 'keras'"):
        plan(ToolkitSettings(kind="keras"))


@pytest.mark.parametrize(
    "toolkit, field",
    [
        (ToolkitSettings(kind="pytorch"), "pythonScriptFilePath"),
        (ToolkitSettings(kind="customMpi"), "commandLine"),
        (ToolkitSettings(kind="cntk", language="BrainScript"), "configFilePath"),
    ],
)
def test_missing_program_is_reported_by_field(toolkit: ToolkitSettings, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        plan(toolkit)


# ------------------------------------------------------------------------------------------
# real mpirun


def test_custom_mpi_plan_runs_under_real_mpirun(tmp_path) -> None:
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        pytest.fail("mpirun not found on PATH: install OpenMPI (apt-get install openmpi-bin) to run this test")
    nodes = make_nodes(2, ip="127.0.0.1", mpi_host="localhost")
    toolkit = ToolkitSettings(kind="customMpi", command_line="echo $OMPI_COMM_WORLD_RANK $AZ_BATCHAI_JOB_NAME")
    job = make_job(toolkit, 2, secrets={"TOKEN": "s3cret"})
    job = JobContext(**{**job.__dict__, "hostfile": str(tmp_path / "hostfile"), "mpirun": mpirun})
    (tmp_path / "hostfile").write_text(hostfile_text(job, nodes))
    [task] = plan_tasks(job, nodes)

    result = subprocess.run(
        ["bash", "-c", task.command],
        env={**os.environ, **task.env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split("\n")[:-1]) == ["0 j1", "1 j1"], result.stdout + result.stderr
