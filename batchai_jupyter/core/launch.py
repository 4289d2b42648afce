"""Per-toolkit task plans: what each process of a job runs, where, with which environment.

Pure functions, no I/O. A backend turns a `JobContext` plus the job's `NodeContext`s into
`TaskPlan`s here, then writes the hostfile and starts one process per plan (as `bash -c
plan.command` in `node.job_temp`, with `plan.env` on top of the node's own environment).

The launch rules follow Azure Batch AI (research contract sections 1, 4 and 5): the `AZ_BATCHAI_*`
variables, mpirun-wrapped toolkits with one `stdout.txt`, TensorFlow's ps/worker placement and
`TF_CONFIG`, and the per-task stdout/stderr file names.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .models import MPI_TOOLKITS, TOOLKITS, JobSpec, ToolkitSettings

RSH_AGENT = "OMPI_MCA_plm_rsh_agent"  # how OpenMPI's mpirun starts its daemons on other hosts


@dataclass(frozen=True)
class NodeContext:
    name: str  # node id, e.g. "tvm-c1-0"
    index: int  # position within the job's nodes (0 = master)
    ip: str  # address other tasks reach it at (MASTER_ADDR, TF hosts)
    mpi_host: str  # the name written to the MPI hostfile for this node
    cpus: int
    gpus: int
    mount_root: str  # AZ_BATCHAI_MOUNT_ROOT on this node
    job_temp_dir: str  # AZ_BATCHAI_JOB_TEMP_DIR on this node
    job_temp: str  # AZ_BATCHAI_JOB_TEMP (this job on this node; also the tasks' working dir)
    job_mount_root: str  # AZ_BATCHAI_JOB_MOUNT_ROOT
    # The backend's own variables for tasks on this node, and a folder put first on their PATH (the
    # local backend's OpenMPI remote shell and mpirun, which start each rank as the node it names).
    env: Mapping[str, str] = field(default_factory=dict)
    bin_dir: str = ""


@dataclass(frozen=True)
class JobContext:
    spec: JobSpec
    attempt: int  # 1 for the first run
    stdouterr_dir: str  # AZ_BATCHAI_STDOUTERR_DIR
    shared_job_temp: str  # AZ_BATCHAI_SHARED_JOB_TEMP (seen by all nodes)
    input_paths: Mapping[str, str]  # input id -> resolved path (AZ_BATCHAI_INPUT_<ID>)
    output_paths: Mapping[str, str]  # output id -> directory (AZ_BATCHAI_OUTPUT_<ID>)
    hostfile: str  # AZ_BATCHAI_MPI_HOST_FILE; the caller writes hostfile_text() there
    master_port: int  # a free port on the master node, for PyTorch rendezvous
    tf_base_port: int = 2222
    mpirun: str = "mpirun"
    python: str = "python"  # interpreter when the spec gives none
    # The node's own environment, so user values like PATH=/opt/bin:$PATH extend it.
    node_base_env: Mapping[str, str] = field(default_factory=dict)
    checkpoint_dir: str = ""  # AZ_BATCHAI_CHECKPOINT_DIR: the job's own, kept across attempts (ours)


@dataclass(frozen=True)
class TaskPlan:
    name: str  # unique within the job: "master" | "<rank>" | "wk-<i>" | "ps-<i>" | "job_prep-<node>"
    node_index: int
    role: str  # "master" | "rank" | "worker" | "ps" | "prep"
    index: int  # rank / task index within the role
    command: str  # one shell command line (bash -c), already env-expanded
    env: Mapping[str, str]  # the complete environment this task needs on top of the node's base env
    stdout_name: str  # file name inside stdouterr
    stderr_name: str
    required: bool = True  # False for ps tasks: the job ends when all required tasks end


# ---------------------------------------------------------------------------------------------
# Variable expansion

_VARIABLE = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand_vars(text: str, env: Mapping[str, str], *, keep_undefined: bool = False) -> str:
    """Replace `$NAME` and `${NAME}` from `env`; an undefined name becomes "" as on Batch AI.

    `$$`, a lone `$`, `${}` and shell forms such as `${NAME:-x}` are kept verbatim.
    `keep_undefined=True` leaves unknown names in place instead: used for text a shell runs
    later, so variables that only exist at run time (`$OMPI_COMM_WORLD_RANK`, `$HOME`) still
    reach the shell, which turns the truly undefined ones into "" anyway.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name is None:  # "$$"
            return match.group(0)
        if name in env:
            return env[name]
        return match.group(0) if keep_undefined else ""

    return _VARIABLE.sub(replace, text)


def _public(job: JobContext, env: Mapping[str, str]) -> dict[str, str]:
    # Secrets are left out of plan-time expansion so their values never appear in a command
    # line (visible in `ps`, stored with the task); the shell reads them from the environment.
    return {name: value for name, value in env.items() if name not in job.spec.secrets}


def _expand_command(job: JobContext, text: str, env: Mapping[str, str]) -> str:
    """Expansion for command lines and argument strings, which a shell runs afterwards."""
    return expand_vars(text, _public(job, env), keep_undefined=True)


def _expand_path(job: JobContext, text: str, env: Mapping[str, str]) -> str:
    return expand_vars(text, _public(job, env))


# ---------------------------------------------------------------------------------------------
# Environment


def _check_nodes(job: JobContext, nodes: Sequence[NodeContext]) -> None:
    if not nodes:
        raise ValueError(f"job {job.spec.name!r}: no nodes to run on")
    if len(nodes) != job.spec.node_count:
        raise ValueError(
            f"job {job.spec.name!r} asks for nodeCount {job.spec.node_count} "
            f"but {len(nodes)} node(s) were given to launch it on"
        )
    for position, node in enumerate(nodes):
        if node.index != position:
            raise ValueError(f"node {node.name!r} has index {node.index}, expected {position}")


def _job_environment(job: JobContext, nodes: Sequence[NodeContext], node: NodeContext) -> dict[str, str]:
    spec = job.spec
    env = dict(node.env)
    if node.bin_dir:
        env["PATH"] = ":".join(p for p in (node.bin_dir, job.node_base_env.get("PATH", "")) if p)
    env |= {
        "AZ_BATCHAI_MOUNT_ROOT": node.mount_root,
        "AZ_BATCHAI_JOB_MOUNT_ROOT": node.job_mount_root,
        "AZ_BATCHAI_JOB_TEMP": node.job_temp,
        "AZ_BATCHAI_JOB_TEMP_DIR": node.job_temp_dir,
        "AZ_BATCHAI_SHARED_JOB_TEMP": job.shared_job_temp,
        "AZ_BATCHAI_STDOUTERR_DIR": job.stdouterr_dir,
        "AZ_BATCHAI_MPI_HOST_FILE": job.hostfile,
        "AZ_BATCHAI_NUM_GPUS": str(node.gpus),
        "AZ_BATCHAI_NUM_GPUS_PER_NODE": str(node.gpus),  # the 2017-09-01-preview name
        "AZ_BATCH_HOST_LIST": ",".join(n.ip for n in nodes),
        # Our additions, not Batch AI's: a job can name its own run without parsing paths.
        "AZ_BATCHAI_JOB_NAME": spec.name,
        "AZ_BATCHAI_EXPERIMENT_NAME": spec.experiment,
        "AZ_BATCHAI_WORKSPACE_NAME": spec.workspace,
        "AZ_BATCHAI_JOB_ATTEMPT": str(job.attempt),
        "AZ_BATCHAI_NODE_IP": node.ip,  # where others reach this node: what a server of the job listens on
    }
    if job.checkpoint_dir:  # a retried attempt finds what the earlier ones saved here
        env["AZ_BATCHAI_CHECKPOINT_DIR"] = job.checkpoint_dir
    if spec.params:  # read with batchai_jupyter.runtime.params()
        env["BATCHAI_PARAMS"] = json.dumps(spec.params)
    return env


def node_context(
    *,
    name: str,
    index: int,
    ip: str,
    mpi_host: str,
    cpus: int,
    gpus: int,
    root: str,
    workspace: str,
    experiment: str,
    job: str,
    env: Mapping[str, str] | None = None,
    bin_dir: str = "",
) -> NodeContext:
    """A node's directories for one job, under the node's sandbox `root` (mounts/, jobs/ in it)."""
    job_temp = f"{root}/jobs/{workspace}/{experiment}/{job}"
    return NodeContext(
        name=name,
        index=index,
        ip=ip,
        mpi_host=mpi_host,
        cpus=cpus,
        gpus=gpus,
        mount_root=f"{root}/mounts",
        job_temp_dir=f"{root}/jobs",
        job_temp=job_temp,
        job_mount_root=f"{job_temp}/mounts",
        env=dict(env or {}),
        bin_dir=bin_dir,
    )


def node_environment(job: JobContext, nodes: Sequence[NodeContext], node: NodeContext) -> dict[str, str]:
    """The variables every task of `job` on `node` sees: AZ_BATCHAI_*, then user env and secrets."""
    env = _job_environment(job, nodes, node)
    base = dict(env)
    for input_id, path in job.input_paths.items():
        resolved = expand_vars(path, base)
        # Batch AI upper-cased input ids (`train` -> AZ_BATCHAI_INPUT_TRAIN); the id as written is kept too.
        env.setdefault(f"AZ_BATCHAI_INPUT_{input_id.upper()}", resolved)
        env[f"AZ_BATCHAI_INPUT_{input_id}"] = resolved
    for output_id, path in job.output_paths.items():
        env[f"AZ_BATCHAI_OUTPUT_{output_id}"] = expand_vars(path, base)
    for name, value in job.spec.environment.items():
        env[name] = expand_vars(value, {**job.node_base_env, **env})
    # Secret values are taken verbatim: passwords and keys often contain "$".
    env.update(job.spec.secrets)
    return env


# ---------------------------------------------------------------------------------------------
# Placement and the MPI hostfile


def processes_per_node(total: int, node_count: int) -> list[int]:
    """Block distribution of `total` processes over `node_count` nodes: 5 over 2 -> [3, 2]."""
    if node_count < 1:
        raise ValueError(f"node count must be at least 1, got {node_count}")
    if total < 0:
        raise ValueError(f"process count must not be negative, got {total}")
    base, extra = divmod(total, node_count)
    return [base + 1 if position < extra else base for position in range(node_count)]


def _process_count(job: JobContext) -> int:
    count = job.spec.toolkit.process_count
    if count is None:
        return job.spec.node_count
    if count < 1:
        raise ValueError(f"job {job.spec.name!r}: toolkit.processCount must be at least 1, got {count}")
    return count


def _uses_mpirun(job: JobContext) -> bool:
    kind = job.spec.toolkit.kind
    return kind in MPI_TOOLKITS or (kind == "caffe" and _process_count(job) > 1)


def hostfile_text(job: JobContext, nodes: Sequence[NodeContext]) -> str:
    """OpenMPI hostfile: `<mpi_host> slots=<n>` per distinct host, in node order.

    OpenMPI rejects a host listed twice with `slots=`, and every local-backend node is
    "localhost", so lines for the same mpi_host are merged with their slots summed.
    """
    _check_nodes(job, nodes)
    if _uses_mpirun(job):
        slots = processes_per_node(_process_count(job), len(nodes))
    else:
        slots = [node.cpus for node in nodes]
    merged: dict[str, int] = {}
    for node, count in zip(nodes, slots):
        merged[node.mpi_host] = merged.get(node.mpi_host, 0) + count
    return "".join(f"{host} slots={count}\n" for host, count in merged.items())


# ---------------------------------------------------------------------------------------------
# Command builders


def _python(job: JobContext, env: Mapping[str, str]) -> str:
    return _expand_path(job, job.spec.toolkit.python_interpreter, env) or job.python


def _with_args(job: JobContext, command: str, args: str, env: Mapping[str, str]) -> str:
    # Argument strings are shell fragments ("--lr 0.1 --data $AZ_BATCHAI_INPUT_X"): not quoted.
    expanded = _expand_command(job, args, env).strip()
    return f"{command} {expanded}" if expanded else command


def _python_script_command(job: JobContext, env: Mapping[str, str], args: str) -> str:
    """`<python> <script> <args>` with the script path expanded and quoted."""
    toolkit = job.spec.toolkit
    if not toolkit.python_script:
        raise ValueError(f"job {job.spec.name!r}: toolkit {toolkit.kind!r} needs pythonScriptFilePath")
    script = _expand_path(job, toolkit.python_script, env)
    return _with_args(job, f"{shlex.quote(_python(job, env))} {shlex.quote(script)}", args, env)


def _config_file(job: JobContext, env: Mapping[str, str]) -> str:
    toolkit = job.spec.toolkit
    if not toolkit.config_file:
        raise ValueError(f"job {job.spec.name!r}: toolkit {toolkit.kind!r} needs configFilePath")
    return shlex.quote(_expand_path(job, toolkit.config_file, env))


def node_specific_environment(job: JobContext, nodes: Sequence[NodeContext]) -> list[dict[str, str]]:
    """Per node, the job's variables whose values differ between its nodes (their directories, address)."""
    envs = [node_environment(job, nodes, node) for node in nodes]
    keys = {key for key in envs[0] if any(env.get(key) != envs[0][key] for env in envs)} - set(job.spec.secrets)
    return [{key: env[key] for key in sorted(keys) if key in env} for env in envs]


def mpi_nodes_text(
    job: JobContext, nodes: Sequence[NodeContext], containers: Sequence[Mapping[str, list[str]]] | None = None
) -> str:
    """mpi-nodes.json beside the hostfile: for each MPI host of the job, the working directory and variables
    of its node, with which the local backend's remote shell (runtime/mpi_agent.py) starts ranks there;
    for a job in an image, per node the command line that runs a shell command in its container
    ("container") and, for a node on another host, how the master's host reaches it ("ssh")."""
    specific = node_specific_environment(job, nodes)
    hosts = {node.mpi_host: {"cwd": node.job_temp, "env": env} for node, env in zip(nodes, specific)}
    for node, entry in zip(nodes, containers or ()):
        hosts[node.mpi_host].update({key: list(words) for key, words in entry.items()})
    return json.dumps(hosts)


def _mpirun_command(job: JobContext, env: Mapping[str, str], program: str, nodes: Sequence[NodeContext] = ()) -> str:
    """Wrap `program` in mpirun over the job's hostfile, forwarding every task variable."""
    # `-x NAME` forwards the variable's value from mpirun's own environment, so ranks on other
    # nodes see the master's task environment (secrets included) without values on the line.
    # Where a remote shell starts each rank as its node (RSH_AGENT), the node's own values stand.
    own = set(node_specific_environment(job, nodes)[0]) if nodes and RSH_AGENT in env else set()
    forwarded = " ".join(f"-x {shlex.quote(name)}" for name in env if name not in own)
    return (
        f"{shlex.quote(job.mpirun)} --allow-run-as-root --oversubscribe"
        f" -np {_process_count(job)}"
        f" --hostfile {shlex.quote(job.hostfile)} --bind-to none {forwarded} {program}"
    )


def _is_brainscript(toolkit: ToolkitSettings) -> bool:
    if toolkit.language:
        return toolkit.language.lower() == "brainscript"
    return not toolkit.python_script  # Batch AI's default language was BrainScript


def _custom_command(job: JobContext, env: Mapping[str, str]) -> str:
    command = _expand_command(job, job.spec.toolkit.command_line, env)
    if not command.strip():
        raise ValueError(f"job {job.spec.name!r}: toolkit {job.spec.toolkit.kind!r} needs commandLine")
    return command


def _master_program(job: JobContext, env: Mapping[str, str]) -> str:
    """The program a single-task toolkit runs, before any mpirun wrapping."""
    toolkit = job.spec.toolkit
    if toolkit.kind in ("custom", "customMpi"):
        command = _custom_command(job, env)
        return f"bash -c {shlex.quote(command)}" if toolkit.kind == "customMpi" else command
    if toolkit.kind == "cntk" and _is_brainscript(toolkit):
        return _with_args(job, f"cntk configFile={_config_file(job, env)}", toolkit.args, env)
    if toolkit.kind == "caffe" and toolkit.config_file:
        return _with_args(job, f"caffe train --solver={_config_file(job, env)}", toolkit.args, env)
    return _python_script_command(job, env, toolkit.args)


# ---------------------------------------------------------------------------------------------
# Task planners


def _task(
    name: str,
    node: NodeContext,
    role: str,
    index: int,
    command: str,
    env: Mapping[str, str],
    log_suffix: str,
    required: bool = True,
) -> TaskPlan:
    """A TaskPlan whose stdout/stderr files are `stdout[-<log_suffix>].txt` (contract section 5)."""
    tail = f"-{log_suffix}" if log_suffix else ""
    return TaskPlan(
        name=name,
        node_index=node.index,
        role=role,
        index=index,
        command=command,
        env=env,
        stdout_name=f"stdout{tail}.txt",
        stderr_name=f"stderr{tail}.txt",
        required=required,
    )


def _plan_master(job: JobContext, nodes: Sequence[NodeContext]) -> list[TaskPlan]:
    """custom, the MPI toolkits and caffe: one task on node 0, wrapped in mpirun where needed."""
    master = nodes[0]
    env = node_environment(job, nodes, master)
    program = _master_program(job, env)
    command = _mpirun_command(job, env, program, nodes) if _uses_mpirun(job) else program
    return [_task("master", master, "master", 0, command, env, "")]


def _rank_task(job: JobContext, node: NodeContext, rank: int, env: Mapping[str, str]) -> TaskPlan:
    env = {**env, "AZ_BATCHAI_TASK_INDEX": str(rank)}
    command = _python_script_command(job, env, job.spec.toolkit.args)
    return _task(str(rank), node, "rank", rank, command, env, str(rank))


def _plan_pytorch(job: JobContext, nodes: Sequence[NodeContext]) -> list[TaskPlan]:
    master = nodes[0]
    world_size = _process_count(job)
    rendezvous = {
        "AZ_BATCHAI_PYTORCH_BACKEND": job.spec.toolkit.communication_backend,
        "AZ_BATCHAI_PYTORCH_INIT_METHOD": f"tcp://{master.ip}:{job.master_port}",
        # torchrun's names, which Batch AI did not set: env:// initialisation works unchanged.
        "MASTER_ADDR": master.ip,
        "MASTER_PORT": str(job.master_port),
        "WORLD_SIZE": str(world_size),
    }
    tasks: list[TaskPlan] = []
    for node, local_world_size in zip(nodes, processes_per_node(world_size, len(nodes))):
        node_env = node_environment(job, nodes, node) | rendezvous
        for local_rank in range(local_world_size):
            rank = len(tasks)
            env = node_env | {
                "RANK": str(rank),
                "LOCAL_RANK": str(local_rank),
                "LOCAL_WORLD_SIZE": str(local_world_size),
                "GROUP_RANK": str(node.index),
            }
            tasks.append(_rank_task(job, node, rank, env))
    return tasks


def _plan_caffe2(job: JobContext, nodes: Sequence[NodeContext]) -> list[TaskPlan]:
    """One task per node; the node index is the shard id."""
    return [_rank_task(job, node, node.index, node_environment(job, nodes, node)) for node in nodes]


@dataclass(frozen=True)
class _TfTask:
    role: str  # "ps" | "worker"
    index: int
    node: NodeContext
    address: str  # ip:port


def _tf_counts(job: JobContext) -> tuple[int, int]:
    """(ps count, worker count) with Batch AI's defaults."""
    toolkit = job.spec.toolkit
    workers = job.spec.node_count if toolkit.worker_count is None else toolkit.worker_count
    if workers < 1:
        raise ValueError(f"job {job.spec.name!r}: toolkit.workerCount must be at least 1, got {workers}")
    distributed = job.spec.node_count > 1 or workers > 1
    ps = (1 if distributed else 0) if toolkit.ps_count is None else toolkit.ps_count
    if ps < 0:
        raise ValueError(f"job {job.spec.name!r}: toolkit.parameterServerCount must not be negative")
    return ps, workers


def _tf_placement(job: JobContext, nodes: Sequence[NodeContext]) -> list[_TfTask]:
    """ps i on node i % n, then worker j on node j % n; ports count up per address from the base."""
    ps_count, worker_count = _tf_counts(job)
    # Keyed by ip, not node: local-backend nodes share one address and must not share ports.
    next_port: dict[str, int] = {}
    placed: list[_TfTask] = []
    for role, count in (("ps", ps_count), ("worker", worker_count)):
        for index in range(count):
            node = nodes[index % len(nodes)]
            port = next_port.get(node.ip, job.tf_base_port)
            next_port[node.ip] = port + 1
            placed.append(_TfTask(role, index, node, f"{node.ip}:{port}"))
    return placed


def _tf_task_type(task: _TfTask, chief: bool) -> tuple[str, int]:
    if task.role == "ps":
        return "ps", task.index
    if task.index == 0:
        return ("chief" if chief else "master"), 0
    return "worker", (task.index - 1 if chief else task.index)


def _tf_config(placed: Sequence[_TfTask], task: _TfTask, chief: bool) -> str:
    ps = [t.address for t in placed if t.role == "ps"]
    workers = [t.address for t in placed if t.role == "worker"]
    if chief:
        cluster = {"chief": workers[:1], "worker": workers[1:], "ps": ps}
    else:
        cluster = {"ps": ps, "worker": workers}
    task_type, index = _tf_task_type(task, chief)
    return json.dumps(
        {
            "cluster": {role: hosts for role, hosts in cluster.items() if hosts},
            "task": {"type": task_type, "index": index},
            "environment": "cloud",
        }
    )


def _tf_args(toolkit: ToolkitSettings, task: _TfTask) -> str:
    if task.role == "ps":
        return toolkit.ps_args
    return toolkit.master_args if task.index == 0 else toolkit.worker_args


def _plan_tensorflow(job: JobContext, nodes: Sequence[NodeContext]) -> list[TaskPlan]:
    placed = _tf_placement(job, nodes)
    hosts = {
        "AZ_BATCHAI_PS_HOSTS": ",".join(t.address for t in placed if t.role == "ps"),
        "AZ_BATCHAI_WORKER_HOSTS": ",".join(t.address for t in placed if t.role == "worker"),
    }
    tasks: list[TaskPlan] = []
    for task in placed:
        env = (
            node_environment(job, nodes, task.node)
            | hosts
            | {
                "AZ_BATCHAI_TASK_INDEX": str(task.index),
                "TF_CONFIG": _tf_config(placed, task, job.spec.toolkit.tf_config_chief),
            }
        )
        command = _python_script_command(job, env, _tf_args(job.spec.toolkit, task))
        prefix = "ps" if task.role == "ps" else "wk"
        name = f"{prefix}-{task.index}"
        tasks.append(_task(name, task.node, task.role, task.index, command, env, name, required=task.role != "ps"))
    return tasks


_PLANNERS = {"pytorch": _plan_pytorch, "tensorflow": _plan_tensorflow, "caffe2": _plan_caffe2}


def plan_tasks(job: JobContext, nodes: Sequence[NodeContext]) -> list[TaskPlan]:
    """The processes that make up one run of `job` on `nodes` (nodes[0] is the master)."""
    _check_nodes(job, nodes)
    kind = job.spec.toolkit.kind
    if kind not in TOOLKITS:
        raise ValueError(f"job {job.spec.name!r}: unknown toolkit {kind!r}; expected one of {', '.join(TOOLKITS)}")
    return _PLANNERS.get(kind, _plan_master)(job, nodes)


def plan_job_preparation(job: JobContext, nodes: Sequence[NodeContext]) -> list[TaskPlan]:
    """One jobPreparation task per node, or none when the job has no preparation command."""
    _check_nodes(job, nodes)
    if not job.spec.job_preparation.strip():
        return []
    tasks: list[TaskPlan] = []
    for node in nodes:
        env = node_environment(job, nodes, node)
        name = "job_prep" if len(nodes) == 1 else f"job_prep-{node.name}"
        command = _expand_command(job, job.spec.job_preparation, env)
        tasks.append(_task(name, node, "prep", node.index, command, env, name))
    return tasks


def execution_log_name(node: NodeContext, node_count: int) -> str:
    """The per-node service log in stdouterr: `execution.log`, or `execution-<node>.log`."""
    return "execution.log" if node_count == 1 else f"execution-{node.name}.log"
