"""The Slurm backend: a scheduler backend (DESIGN.md). Slurm allocates the nodes and runs the gang;
we give it the Batch AI model, the env contract, the logs and the files on top.

One job attempt is one Slurm job: `sbatch --nodes=N` runs our driver (slurm_driver.py) on the
allocation's first node, which builds the task plans with the local backend's launch code and starts
one `srun` step per task. Everything the service needs to follow an attempt is in its control
directory on the shared file system (sharedRoot/jobs/<job uuid>-<attempt>/): the Slurm job id, the
driver's started/tasks/result files and each task's exit file, so a restarted service re-attaches
by reading them. Slurm itself is asked with one `squeue` per poll for all jobs, paced with backoff,
to learn what files cannot tell: why a job waits, and jobs Slurm ended (timeout, node failure,
cancellation) before our driver could say so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import BatchAIError
from ..ports.compute import (
    GANG_ENDED,
    PRIVATE_ENV,
    BackendContext,
    ChecksClusters,
    ClusterRef,
    ClusterSpecRef,
    GangRequest,
    GangStatus,
    GangTask,
    NodePlacement,
    NodePool,
    NodeRef,
    SchedulerBackend,
    SchedulerNode,
    SchedulerUnavailable,
)
from ..runtime import mpi_agent, wrapper
from . import slurm_driver, slurm_step
from .slurm_commands import (
    LOST_STATES,
    RUNNING_STATES,
    WAITING_STATES,
    SlurmCommands,
    expand_hostlist,
    local_runner,
    node_state,
    sbatch_time,
    slurm_env,
    ssh_runner,
)
from .slurm_options import SlurmOptions, parse_slurm_options

log = logging.getLogger("batchai")
JOB_NAME_PREFIX = "batchai-"
# squeue pacing: every MIN seconds while things change, backing off to MAX while nothing does.
MIN_QUEUE_POLL_SECONDS = 1.0
MAX_QUEUE_POLL_SECONDS = 10.0
# How long removing a deleted job's control directory keeps trying while its cancelled tasks still end.
FORGET_SECONDS = 30.0
# Slurm reasons worth telling as they are, for jobs it ended before our driver could.
_LOST_MESSAGES = {
    "NODE_FAIL": "a node of the job's allocation failed (Slurm NODE_FAIL)",
    "BOOT_FAIL": "a node of the job's allocation failed to boot (Slurm BOOT_FAIL)",
    "PREEMPTED": "Slurm preempted the job",
    "DEADLINE": "Slurm ended the job at its deadline",
    "OUT_OF_MEMORY": "the job ran out of memory (Slurm OUT_OF_MEMORY)",
}
# Shipped with the core's task planner (BackendContext.planner_files: package `batchai_launch`).
_RUNTIME_FILES = {
    "slurm_driver.py": slurm_driver.__file__,
    "slurm_step.py": slurm_step.__file__,
    "wrapper.py": wrapper.__file__,
    "mpi_agent.py": mpi_agent.__file__,
}


def _read_json(path: str):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _write(path: str, text: str, mode: int = 0o644) -> None:
    temporary = f"{path}.tmp"
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _scrub_secrets(control: str) -> None:
    """Removes what holds secret values in an attempt's control directory once nothing will read it:
    the secrets file (the driver deletes it when it starts) and the task files of steps that never
    started (the wrapper deletes each, as task.claimed, once its task started)."""
    leftovers = [os.path.join(control, "secrets.json"), os.path.join(control, "secrets.json.tmp")]
    runs = os.path.join(control, "runs")
    if os.path.isdir(runs):
        for task in os.listdir(runs):
            leftovers += [
                os.path.join(runs, task, name) for name in ("task.json", "task.json.tmp", wrapper.TASK_CLAIMED)
            ]
    for path in leftovers:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _service_env() -> dict:  # the service's own secrets never reach Slurm jobs
    return {name: value for name, value in os.environ.items() if name not in PRIVATE_ENV}


class QueuePacer:
    """When the next `squeue` is due: soon after a change, less and less often while none comes."""

    def __init__(self, minimum: float = MIN_QUEUE_POLL_SECONDS, maximum: float = MAX_QUEUE_POLL_SECONDS):
        self.minimum, self.maximum = minimum, maximum
        self.interval = minimum
        self.last = float("-inf")
        self.seen: dict[str, str] = {}

    def due(self, now: float) -> bool:
        return now - self.last >= self.interval

    def observed(self, now: float, states: dict[str, str]) -> None:
        changed = states != self.seen
        self.seen = states
        self.last = now
        self.interval = self.minimum if changed else min(self.maximum, self.interval * 2)

    def reset(self) -> None:
        self.interval = self.minimum
        self.last = float("-inf")


class SlurmBackend(SchedulerBackend, NodePool, ChecksClusters):
    name = "slurm"

    def __init__(
        self,
        home: str,
        site_options: dict,
        commands_for: Callable[[SlurmOptions], SlurmCommands] | None = None,
        planner_files: Mapping[str, str] | None = None,
    ):
        self.home = home
        self._runtime_files = {**_RUNTIME_FILES, **(planner_files or {})}
        self.site_options = dict(site_options or {})
        self._commands_for = commands_for or self._default_commands
        self._ssh_pool = None
        self._wakeup: Callable[[], None] = lambda: None
        self._pacers: dict[str, QueuePacer] = {}
        self._shipped: set[str] = set()
        self._addresses: dict[str, str] = {}  # node name → NodeAddr, from the last sinfo (saves the driver a call)
        self._lock = threading.Lock()

    def set_wakeup(self, callback: Callable[[], None]) -> None:
        self._wakeup = callback

    def close(self) -> None:
        with self._lock:
            pool, self._ssh_pool = self._ssh_pool, None
        if pool is not None:  # the login node's connections
            pool.close()

    def options(self, spec: ClusterSpecRef) -> SlurmOptions:
        """A cluster's options, from its spec."""
        options = parse_slurm_options(self.site_options, spec.backend_options or {}, self.home)
        if not options.gpus_per_node and spec.gpus_per_node:  # the cluster's own gpusPerNode
            options = dataclasses.replace(options, gpus_per_node=int(spec.gpus_per_node))
        return options

    def commands(self, options: SlurmOptions) -> SlurmCommands:
        return self._commands_for(options)

    def _default_commands(self, options: SlurmOptions) -> SlurmCommands:
        """The commands on this machine, or over SSH on the login node (the SSH backend's connections)."""
        if options.login_node is None:
            return SlurmCommands(local_runner(slurm_env(_service_env(), options.slurm_conf)))
        from .ssh_connection import ConnectionPool, Login

        with self._lock:
            if self._ssh_pool is None:
                self._ssh_pool = ConnectionPool()
        connection = self._ssh_pool.get(options.login_node, Login(*options.login))
        return SlurmCommands(ssh_runner(connection, options.slurm_conf), user=options.login_node.user)

    # -- clusters ----------------------------------------------------------------------------------

    def check_cluster(self, spec: ClusterSpecRef) -> None:
        """Refuses a cluster whose options are wrong or whose partition Slurm does not have."""
        options = self.options(spec)
        partitions = self.commands(options).partitions()
        if options.partition and options.partition not in partitions:
            raise BatchAIError(
                "UnknownPartition",
                f"backendOptions.partition: Slurm has no partition "
                f"{options.partition!r}; `sinfo` lists: {', '.join(partitions)}",
            )

    def scheduler_nodes(self, cluster: ClusterRef) -> list[SchedulerNode]:
        options = self.options(cluster.spec)
        entries = self.commands(options).nodes(options.partition)
        self._addresses.update({entry.name: entry.address for entry in entries})
        return [
            SchedulerNode(entry.name, node_state(entry), entry.address, entry.cpus, options.gpus_per_node, entry.reason)
            for entry in entries
        ]

    def node_cap(self, cluster: ClusterRef) -> int | None:
        return self.options(cluster.spec).max_nodes_in_use

    # -- node-pool protocol: a Slurm cluster's nodes are never ours to provision --------------------

    def provision(self, cluster: ClusterRef, node: NodeRef) -> NodePlacement:
        raise BatchAIError("ClusterSizedByScheduler", "a Slurm cluster's nodes are Slurm's; they are not provisioned")

    def release(self, cluster: ClusterRef, node: NodeRef) -> None:
        pass

    # -- submitting --------------------------------------------------------------------------------

    def control_dir(self, options: SlurmOptions, key: str) -> str:
        return os.path.join(options.shared_root, "jobs", key)

    def submit(self, cluster: ClusterRef, request: GangRequest) -> None:
        options = self.options(cluster.spec)
        commands = self.commands(options)
        control = self.control_dir(options, request.key)
        if os.path.exists(os.path.join(control, "slurm_job_id")):
            return  # submitted before a restart; the handed-over phase was not recorded yet
        adopted = self._find_by_name(commands, request.key)
        os.makedirs(os.path.join(control, "runs"), exist_ok=True)
        if adopted:
            _write(os.path.join(control, "slurm_job_id"), adopted)
            return
        runtime = self._ship_runtime(options)
        self._write_job_files(options, request, control, runtime, cluster.spec.container_runtime)
        script = (
            f"#!/bin/sh\nexec {shlex.quote(options.python)} -S "
            f"{shlex.quote(os.path.join(options.on_nodes(runtime), 'slurm_driver.py'))} "
            f"{shlex.quote(options.on_nodes(control))}\n"
        )
        job_id = commands.sbatch(self._sbatch_options(options, request, options.on_nodes(control)), script)
        _write(os.path.join(control, "slurm_job_id"), job_id)
        self._pacer(options).reset()

    def _find_by_name(self, commands: SlurmCommands, key: str) -> str | None:
        name = JOB_NAME_PREFIX + key
        for entry in commands.queue():
            if entry.name == name and entry.state in WAITING_STATES | RUNNING_STATES:
                return entry.job_id
        return None

    def _write_job_files(
        self,
        options: SlurmOptions,
        request: GangRequest,
        control: str,
        runtime: str,
        container_runtime: dict[str, Any] | None,
    ) -> None:
        context = dataclasses.asdict(request.context)
        secrets = dict(context["spec"].get("secrets") or {})
        context["spec"]["secrets"] = {}
        container = context["spec"].get("container")
        if container and container.get("password"):  # with the secrets, never in job.json
            secrets[slurm_driver.REGISTRY_SECRET] = container.pop("password")
        context.pop("node_base_env", None)
        on_nodes = options.on_nodes
        for key in ("stdouterr_dir", "shared_job_temp", "hostfile"):
            context[key] = on_nodes(context[key])
        context["input_paths"] = {k: on_nodes(v) for k, v in context["input_paths"].items()}
        context["output_paths"] = {k: on_nodes(v) for k, v in context["output_paths"].items()}
        if options.python_given and not container:  # in an image, the image's Python
            context["python"] = options.python
        job = {
            "context": context,
            "runtime": on_nodes(runtime),
            "node_root": options.nodes_root,
            "gpus_per_node": options.gpus_per_node,
            "python": options.python,
            "node_addresses": dict(self._addresses),
            "container_runtime": container_runtime,
        }
        for stale in ("result.json", "started.json", "tasks.json", "cancelled"):
            if os.path.exists(os.path.join(control, stale)):
                os.unlink(os.path.join(control, stale))
        _write(os.path.join(control, "secrets.json"), json.dumps(secrets), mode=0o600)
        _write(os.path.join(control, "job.json"), json.dumps(job))

    @staticmethod
    def _sbatch_options(options: SlurmOptions, request: GangRequest, control: str) -> list[str]:
        argv = [
            f"--job-name={JOB_NAME_PREFIX}{request.key}",
            f"--nodes={request.node_count}",
            f"--output={control}/batch.out",
            f"--chdir={control}",
            "--no-requeue",
        ]
        if options.partition:
            argv.append(f"--partition={options.partition}")
        if options.account:
            argv.append(f"--account={options.account}")
        qos = options.high_priority_qos if request.priority > 0 and options.high_priority_qos else options.qos
        if qos:
            argv.append(f"--qos={qos}")
        if request.priority < 0 or (request.priority > 0 and not options.high_priority_qos):
            argv.append(f"--nice={-request.priority}")
        gres = options.gres or (f"gpu:{options.gpus_per_node}" if options.gpus_per_node else "")
        if gres:
            argv.append(f"--gres={gres}")
        if request.explicit_wall_clock:
            argv.append(f"--time={sbatch_time(request.max_wall_clock_seconds)}")
        return argv + list(options.sbatch_options)

    def _ship_runtime(self, options: SlurmOptions) -> str:
        """Copies the driver, the step, the wrapper and the launch code to the shared file system
        once per version (content-hashed directory, written aside and renamed into place)."""
        digest = hashlib.sha256()
        for name, path in sorted(self._runtime_files.items()):
            with open(path, "rb") as handle:
                digest.update(name.encode() + b"\0" + handle.read())
        target = os.path.join(options.shared_root, "runtime", digest.hexdigest()[:16])
        if target in self._shipped or os.path.isdir(target):
            self._shipped.add(target)
            return target
        os.makedirs(os.path.dirname(target), exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".runtime-", dir=os.path.dirname(target))
        os.makedirs(os.path.join(staging, "batchai_launch"))
        _write(os.path.join(staging, "batchai_launch", "__init__.py"), "")
        for name, path in self._runtime_files.items():
            shutil.copyfile(path, os.path.join(staging, name))
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, target)
        except OSError:  # another service shipped the same version first
            shutil.rmtree(staging, ignore_errors=True)
        self._shipped.add(target)
        return target

    # -- following ---------------------------------------------------------------------------------

    def _pacer(self, options: SlurmOptions) -> QueuePacer:
        with self._lock:
            return self._pacers.setdefault(options.where, QueuePacer())

    def _queue(self, options: SlurmOptions, commands: SlurmCommands) -> dict | None:
        """Slurm's view of our jobs by id: a fresh squeue when one is due, else None."""
        pacer = self._pacer(options)
        now = time.monotonic()
        if not pacer.due(now):
            return None
        try:
            listed = commands.queue()
        except SchedulerUnavailable:
            return None  # the control files still tell starts, tasks and ends
        entries = {entry.job_id: entry for entry in listed if entry.name.startswith(JOB_NAME_PREFIX)}
        pacer.observed(now, {job_id: entry.state for job_id, entry in entries.items()})
        return entries

    def poll(self, cluster: ClusterRef, keys: list[str]) -> dict[str, GangStatus]:
        options = self.options(cluster.spec)
        queue = self._queue(options, self.commands(options))  # before the files: they are newer then
        statuses = {key: self._status(options, key, queue) for key in keys}
        for key, status in statuses.items():
            if status.state in GANG_ENDED:
                _scrub_secrets(self.control_dir(options, key))
        return statuses

    def _status(self, options: SlurmOptions, key: str, queue: dict | None) -> GangStatus:
        control = self.control_dir(options, key)
        started = _read_json(os.path.join(control, "started.json"))
        nodes = tuple(started["nodes"]) if started else ()
        result = _read_json(os.path.join(control, "result.json"))
        tasks = self._tasks(control, result)
        if result:
            return GangStatus(result["state"], nodes, tasks, result.get("exit_code"), result.get("error"))
        try:
            with open(os.path.join(control, "slurm_job_id")) as handle:
                job_id = handle.read().strip()
        except OSError:
            return GangStatus("queued")
        if queue is None:
            return GangStatus("running" if started else "queued", nodes, tasks)
        entry = queue.get(job_id)
        if entry is None:
            return GangStatus(
                "lost",
                nodes,
                tasks,
                error={
                    "code": "SlurmJobVanished",
                    "message": (
                        f"Slurm job {job_id} is gone without our driver recording how it ended; see "
                        f"{os.path.join(control, 'batch.out')}"
                    ),
                },
            )
        if entry.state in WAITING_STATES:
            return GangStatus("running" if started else "queued", nodes, tasks, reason=entry.reason)
        if entry.state in RUNNING_STATES:
            return GangStatus("running", nodes or tuple(expand_hostlist(entry.nodes)), tasks)
        return self._ended_without_result(control, job_id, entry, nodes, tasks)

    def _ended_without_result(self, control: str, job_id: str, entry, nodes, tasks) -> GangStatus:
        what = f"Slurm job {job_id} ended {entry.state}" + (
            f" ({entry.reason})" if entry.reason not in ("", "None") else ""
        )
        if entry.state == "TIMEOUT":
            return GangStatus("timeout", nodes, tasks, error={"code": "MaxWallClockTimeExceeded", "message": what})
        if entry.state == "CANCELLED":
            ours = os.path.exists(os.path.join(control, "cancelled"))
            message = what + ("" if ours else "; it was cancelled outside batchai (scancel)")
            return GangStatus("cancelled", nodes, tasks, error={"code": "JobCancelled", "message": message})
        if entry.state in LOST_STATES:
            message = f"{_LOST_MESSAGES.get(entry.state, what)} (Slurm job {job_id})"
            return GangStatus(
                "lost",
                nodes,
                tasks,
                error={"code": "NodeFailure" if entry.state == "NODE_FAIL" else "SlurmJobFailed", "message": message},
            )
        return GangStatus(
            "lost",
            nodes,
            tasks,
            error={
                "code": "SlurmJobFailed",
                "message": (f"{what} without our driver recording a result; see {os.path.join(control, 'batch.out')}"),
            },
        )

    @staticmethod
    def _tasks(control: str, result: dict | None) -> tuple[GangTask, ...]:
        """The attempt's tasks from the driver's manifest and each task's exit file."""
        manifest = _read_json(os.path.join(control, "tasks.json")) or []
        stopped = set((result or {}).get("stopped") or ())
        tasks = []
        for item in manifest:
            ended = None if item["name"] in stopped else _read_json(os.path.join(control, "runs", item["name"], "exit"))
            state = "exited" if ended else "killed" if item["name"] in stopped else "running"
            tasks.append(
                GangTask(
                    name=item["name"],
                    node=item["node"],
                    phase=item["phase"],
                    role=item["role"],
                    rank=item["rank"],
                    required=item["required"],
                    stdout=item["stdout"],
                    stderr=item["stderr"],
                    state=state,
                    exit_code=int(ended["exit_code"]) if ended else None,
                    launched=item.get("launched"),
                    ended=ended.get("ended") if ended else None,
                )
            )
        return tuple(tasks)

    # -- cancelling --------------------------------------------------------------------------------

    def cancel(self, cluster: ClusterRef, key: str) -> None:
        options = self.options(cluster.spec)
        control = self.control_dir(options, key)
        try:
            with open(os.path.join(control, "slurm_job_id")) as handle:
                job_id = handle.read().strip()
        except OSError:
            job_id = self._find_by_name(self.commands(options), key)
        if not job_id:
            return
        if os.path.isdir(control):
            _write(os.path.join(control, "cancelled"), str(time.time()))
        self.commands(options).cancel(job_id)
        _scrub_secrets(control)  # a job cancelled before it ran never read them
        self._pacer(options).reset()

    def forget(self, cluster: ClusterRef, key: str) -> None:
        """A deleted job's attempt: its control directory goes (task exit files, batch output). Its tasks
        were just cancelled and may still be writing there while they end, so the removal is tried again
        until nothing is left (or, past FORGET_SECONDS, the rest is left and said so)."""
        control = self.control_dir(self.options(cluster.spec), key)
        deadline = time.monotonic() + FORGET_SECONDS
        while True:
            shutil.rmtree(control, ignore_errors=True)
            if not os.path.exists(control):
                return
            if time.monotonic() > deadline:
                log.warning("batchai: %s is still being written to after the job was deleted; left in place", control)
                return
            time.sleep(0.1)


def create(context: BackendContext) -> SlurmBackend:
    if not context.planner_files:  # the driver plans tasks with them on the allocation
        raise BatchAIError(
            "BackendUnavailable",
            "the slurm backend needs the core's task planner files "
            "(BackendContext.planner_files); build the service with "
            "batchai_jupyter.assembly.build_service",
        )
    return SlurmBackend(context.layout.root, dict(context.options), planner_files=context.planner_files)
