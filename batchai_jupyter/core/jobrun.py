"""Running one job attempt on its nodes: start, watch, advance from preparation to the toolkit's
tasks, and end it (succeeded, failed, requeued for a retry, or terminated)."""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from ..errors import BatchAIError
from ..ports.compute import (
    Backend,
    ComputeBackend,
    DetachedTasks,
    NodeDirectory,
    NodeScript,
    NodeScripts,
    RemoteNodes,
    TaskLaunch,
)
from ..ports.datastores import Datastore, JobStorage
from ..ports.layout import HomeLayout
from . import launch, lifecycle, node_view, placement
from .containers import ContainerError
from .events import EventBus
from .job_containers import JobContainers, StreamingScript, container_name, run_here_streaming, visible_gpus
from .lifecycle import JobEvent, NodeEvent, TaskEvent
from .locations import location_of
from .records import Job, Node, Task
from .store import Store

# The interpreter a job in an image runs its script with (the image's; `pythonInterpreterPath` chooses another).
CONTAINER_PYTHON = "python3"
EXCLUSIVE_PREPARATION = "job-preparation"  # apt-get and pip of two jobPreparations must not collide
MPI_NODES_FILE = "mpi-nodes.json"  # runtime/mpi_agent.py's NODES_FILE (the runtime imports nothing of ours)
# How long terminated tasks get to exit after SIGTERM before they are killed outright.
TERMINATE_GRACE_SECONDS = 10.0


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
        return port


def error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


class JobRunner:
    def __init__(
        self,
        store: Store,
        layout: HomeLayout,
        events: EventBus,
        backend_for: Callable[[str, str], ComputeBackend],
        datastore_for: Callable[..., Datastore],
        base_env: Callable[[], dict[str, str]],
        data: JobStorage,
    ):
        self.store = store
        self.layout = layout
        self.events = events
        self.backend_for = backend_for  # (workspace, cluster) -> backend
        self.datastore_for = datastore_for  # (workspace[, name]) -> a datastore, by default the default one
        self.base_env = base_env
        self.data = data  # staging, mounts, flushing: storage/jobdata.py
        self.containers = JobContainers(store)
        # Tasks this service handed over or found taken up; any other running one it asks about once.
        self._known_started: set[int] = set()
        # (job id, attempt) -> the notes of its preparation, running on a thread (_start_mounting), and what
        # stops its mount commands when the job ends first.
        self._mounting: dict[tuple[int, int], tuple[Future[list[str]], threading.Event]] = {}
        self.wake: Callable[[], None] = lambda: None  # the engine's: a finished mount moves its job on now

    # -- building the launch context -------------------------------------------------------

    def context(self, job: Job) -> tuple[launch.JobContext, list[launch.NodeContext]]:
        spec = job.with_secrets()
        datastore = self.datastore_for(job.workspace)
        shared = self.layout.shared_job_temp(job.uuid)
        nodes = [
            self._node_context(job, self.store.existing_node(node_id), index)
            for index, node_id in enumerate(job.node_ids)
        ]
        context = launch.JobContext(
            spec=spec,
            attempt=job.attempt,
            stdouterr_dir=self._placed_path(job, placement.STDOUTERR),
            shared_job_temp=shared,
            input_paths={d.id: self._resolve(job.workspace, d.path) for d in spec.input_directories},
            # under the node's mount root where the job said so ($AZ_BATCHAI_JOB_MOUNT_ROOT/...), as inputs are
            output_paths={
                d.id: placement.node_path_of(job, d.id) or self._placed_path(job, d.id) for d in spec.output_directories
            },
            hostfile=os.path.join(shared, "hostfile"),
            master_port=job.master_port or 0,
            # In an image, the image's Python; a backend whose nodes are other machines names the Python
            # there (node info "python").
            python=CONTAINER_PYTHON
            if spec.container
            else self._node_python(job) or os.environ.get("BATCHAI_TASK_PYTHON") or _default_python(),
            node_base_env=self.base_env(),
            checkpoint_dir=datastore.node_path(f"{job.segment}/checkpoints"),
        )
        return context, nodes

    def _placed_path(self, job: Job, output_id: str) -> str:
        datastore, path = placement.placement_of(job, output_id)
        return self.datastore_for(job.workspace, datastore).node_path(path)

    def _resolve(self, workspace: str, path: str) -> str:
        """A data path on the service's machine: a location's datastore gives its node_path (for nodes
        that are other machines, node_view maps it on); any other path is kept as given."""
        location = location_of(path)
        if location is None:
            return path
        return self.datastore_for(workspace, location.datastore).node_path(location.path)

    def _node_python(self, job: Job) -> str:
        first = self.store.node(job.node_ids[0]) if job.node_ids else None
        return first.info.get("python", "") if first is not None else ""

    def _node_context(self, job: Job, node: Node, index: int) -> launch.NodeContext:
        info = node.info
        return launch.node_context(
            name=node.name,
            index=index,
            ip=node.ip,
            mpi_host=info["mpi_host"],
            cpus=info["cpus"],
            gpus=visible_gpus(job.spec, info),
            root=info["root"],
            workspace=job.workspace,
            experiment=job.experiment,
            job=job.name,
            # what a backend gives a node's tasks in an image only (an SSH host's MPI remote shell)
            env={**info.get("env", {}), **(info.get("container_env", {}) if job.spec.container else {})},
            bin_dir=info.get("bin", ""),
        )

    # -- start -----------------------------------------------------------------------------

    def start(self, job: Job, node_ids: tuple[int, ...]) -> None:
        first = self.store.existing_node(node_ids[0])
        backend = self.backend_for(job.workspace, job.cluster)
        # A backend whose nodes are other machines asks the master's host for a free port.
        remote = isinstance(backend, RemoteNodes)
        master_port = backend.free_port(first) if isinstance(backend, RemoteNodes) else _free_port(first.ip)
        placements = placement.placements(
            job,
            lambda path: self.data.mount_place(job, path),
            lambda name: self.store.datastore_row(job.workspace, name) is not None,
        )
        with self.store.transaction():
            self.store.set_job_state(
                job.id,
                JobEvent.START,
                started=time.time(),
                node_ids=list(node_ids),
                master_port=master_port,
                exit_code=None,
                placements=placements,
            )
            for node_id in node_ids:
                self.store.set_node_state(node_id, NodeEvent.CLAIMED, job_id=job.id)
        job = self.store.existing_job(job.id)
        context, nodes = self.context(job)
        for output_id in job.placements:  # an output the nodes see under a mount root is made where it is kept
            os.makedirs(self._placed_path(job, output_id), exist_ok=True)
        self._prepare_directories(context, nodes, local_nodes=not remote)
        prepare = functools.partial(
            self.data.prepare,
            job,
            list(context.input_paths.values()),
            nodes,
            remote=remote,
            show=self._show_mounts_on(backend, node_ids),
            run=self.node_scripts(backend, node_ids),
        )
        if not remote and self.data.runs_mount_commands(job):
            cancelled = threading.Event()
            self._start_mounting(job, functools.partial(prepare, cancelled=cancelled), cancelled)
            return
        try:
            notes = prepare()
        except BatchAIError as failure:
            self._mounts_failed(job, failure)
            return
        self._launch_first_phase(job, notes)

    def _mounts_failed(self, job: Job, failure: BatchAIError) -> None:
        self.attempt_failed(job, error(failure.code, f"the job's inputs or mounts are not ready: {failure}"), None)

    def _launch_first_phase(self, job: Job, notes: list[str]) -> None:
        """With the job's inputs and mounts in place: its image pulled, then its first phase's tasks."""
        backend = self.backend_for(job.workspace, job.cluster)
        context, nodes = self.context(job)
        for note in notes:
            self._log_execution(context, nodes, nodes[0], note)
        if job.spec.container is not None:
            if not self._pull_image(job, backend, context, nodes):
                return
            context, nodes = self.context(job)  # what the pull found of the nodes (their GPUs in containers)
            rows = [self.store.existing_node(node_id) for node_id in job.node_ids]
            if any(row.info.get("mpi_relay") for row in rows):  # ranks mpirun starts on other nodes: in the image too
                node_paths = self._node_paths(backend, job.node_ids)
                peers = self.containers.mpi_peer_commands(job.uuid, job.attempt, context, nodes, rows, node_paths)
                self._write_mpi_nodes(context, nodes, peers)
        prep = launch.plan_job_preparation(context, nodes)
        self._launch_phase(job, context, nodes, "prep" if prep else "main")
        self.events.publish("job", **_job_key(job), state="running", attempt=job.attempt)

    # -- mount commands, off the cluster's worker -------------------------------------------

    def _start_mounting(self, job: Job, prepare: Callable[[], list[str]], cancelled: threading.Event) -> None:
        """Runs the job's preparation with its mount commands (up to MOUNT_SECONDS each) on a thread of its
        own: the cluster's worker goes on meanwhile (its other jobs, a terminate, a delete). The job stays
        in its `mount` phase until `advance` finds the thread done; its end sets `cancelled`."""
        self.store.update("jobs", {"id": job.id}, phase=lifecycle.JobPhase.MOUNT.value)
        done: Future[list[str]] = Future()
        self._mounting[(job.id, job.attempt)] = done, cancelled

        def run() -> None:
            try:
                done.set_result(prepare())
            except BaseException as failure:  # advance() reports it as the attempt's failure
                done.set_exception(failure)
            self.wake()

        threading.Thread(target=run, name=f"batchai-mount-{job.uuid}", daemon=True).start()
        self.events.publish("job", **_job_key(job), state="running", attempt=job.attempt)

    def stop_mounting(self) -> None:
        """The service stops: its mount commands are killed (the restarted service runs the attempts again)."""
        for _done, cancelled in list(self._mounting.values()):
            cancelled.set()

    def _advance_mounting(self, job: Job) -> None:
        done, _cancelled = self._mounting.get((job.id, job.attempt), (None, None))
        if done is None:  # a service that stopped while the commands ran: they run again in a new attempt
            self._interrupted(job, "mounting the volumes of")
            return
        if not done.done():
            return
        del self._mounting[(job.id, job.attempt)]
        try:
            notes = done.result()
        except BatchAIError as failure:
            self._mounts_failed(job, failure)
            return
        except Exception as failure:  # an unforeseen one ends the attempt with its words, not a stuck job
            self._mounts_failed(job, BatchAIError("MountFailed", str(failure) or type(failure).__name__))
            return
        self._launch_first_phase(job, notes)

    def _pull_image(
        self, job: Job, backend: Backend, context: launch.JobContext, nodes: list[launch.NodeContext]
    ) -> bool:
        """Makes the job's image present on its nodes before any task starts; a node that cannot get it
        fails the attempt with the runtime's reason, and nothing of it has started."""
        run = self.node_scripts(backend, job.node_ids)
        try:
            if run is None:
                raise ContainerError(f"cluster {job.cluster}'s backend cannot run containers")
            self.containers.pull(
                job.with_secrets(),
                job.node_ids,
                run,
                lambda index, line: self._log_execution(context, nodes, nodes[index], line),
                self._streaming_scripts(backend, job.node_ids),
            )
        except ContainerError as failure:
            self.attempt_failed(job, error("ImagePullFailed", str(failure)), None)
            return False
        return True

    def _show_mounts_on(
        self, backend: Backend, node_ids: Sequence[int]
    ) -> Callable[[int], Callable[[str, list[Any]], None]] | None:
        """Shows mounts on the job's nodes (by index) through a remote backend; None for nodes that see
        the service's files (the mounts are linked here)."""
        if not isinstance(backend, RemoteNodes):
            return None
        return lambda index: (
            lambda root, mounts: backend.show_mounts(self.store.existing_node(node_ids[index]), root, mounts)
        )

    def node_scripts(self, backend: Backend, node_ids: Sequence[int]) -> Callable[[int], NodeScript] | None:
        """Runs scripts on the job's nodes (by index): here for nodes that see the service's files, else
        through the backend's `run_script`; None when the backend has none."""
        if not isinstance(backend, RemoteNodes):
            return lambda index: self.data.run_here
        if not isinstance(backend, NodeScripts):
            return None
        return lambda index: (
            lambda script, stdin: backend.run_script(self.store.existing_node(node_ids[index]), script, stdin)
        )

    def _streaming_scripts(self, backend: Backend, node_ids: Sequence[int]) -> Callable[[int], StreamingScript] | None:
        """node_scripts whose output reaches a sink line by line while they run (a pull's progress)."""
        if not isinstance(backend, RemoteNodes):
            return lambda index: run_here_streaming
        if not isinstance(backend, NodeScripts):
            return None
        return lambda index: (
            lambda script, stdin, sink: backend.run_script_streaming(
                self.store.existing_node(node_ids[index]), script, stdin, sink
            )
        )

    def _unmount(self, job: Job) -> list[dict[str, Any]]:
        """Unmounts the job's native mounts on its nodes (they upload what the job wrote first)."""
        if not job.node_ids or not any(self.data.mounts_are_native(job)):
            return []
        run = self.node_scripts(self.backend_for(job.workspace, job.cluster), job.node_ids)
        if run is None:
            return []
        _context, nodes = self.context(job)
        return self.data.unmount_job(nodes, run)

    def _prepare_directories(
        self, context: launch.JobContext, nodes: list[launch.NodeContext], local_nodes: bool = True
    ) -> None:
        for path in (context.stdouterr_dir, context.shared_job_temp, *context.output_paths.values()):
            if os.path.isabs(path):
                os.makedirs(path, exist_ok=True)
        if context.checkpoint_dir:
            os.makedirs(context.checkpoint_dir, exist_ok=True)
        for node in nodes if local_nodes else ():  # a remote backend makes its nodes' directories itself
            os.makedirs(node.job_temp, exist_ok=True)
            os.makedirs(node.job_mount_root, exist_ok=True)
        with open(context.hostfile, "w") as handle:
            handle.write(launch.hostfile_text(context, nodes))
        if any(node.bin_dir for node in nodes):  # the local backend's MPI remote shell reads it
            self._write_mpi_nodes(context, nodes)

    @staticmethod
    def _write_mpi_nodes(
        context: launch.JobContext,
        nodes: list[launch.NodeContext],
        containers: list[dict[str, list[str]]] | None = None,
    ) -> None:
        with open(os.path.join(os.path.dirname(context.hostfile), MPI_NODES_FILE), "w") as handle:
            handle.write(launch.mpi_nodes_text(context, nodes, containers))

    def _node_paths(self, backend: Backend, node_ids: Sequence[int]) -> Callable[[int], node_view.NodePath] | None:
        """Where each of the job's nodes (by index) sees the service's directories; None for nodes that
        see the service's files."""
        if not isinstance(backend, RemoteNodes):
            return None
        return lambda index: lambda path: backend.node_path(self.store.existing_node(node_ids[index]), path)

    def _launch_phase(self, job: Job, context: launch.JobContext, nodes: list[launch.NodeContext], phase: str) -> None:
        now = time.time()
        node_ids = job.node_ids
        backend = self.backend_for(job.workspace, job.cluster)
        assert isinstance(backend, DetachedTasks), "a scheduler backend's tasks are started by its scheduler"
        rows = []
        with self.store.transaction():
            self.store.update("jobs", {"id": job.id}, phase=phase)
            for plan, directories in self._plan_phase(job, context, nodes, phase):
                run_dir = os.path.join(
                    nodes[plan.node_index].job_temp_dir, "..", "run", f"{job.uuid}-{job.attempt}-{plan.name}"
                )
                run_dir = os.path.normpath(run_dir)
                task_id = self.store.insert(
                    "tasks",
                    job_id=job.id,
                    attempt=job.attempt,
                    phase=phase,
                    name=plan.name,
                    node_id=node_ids[plan.node_index],
                    role=plan.role,
                    rank=plan.index,
                    required=int(plan.required),
                    run_dir=run_dir,
                    stdout=plan.stdout_name,
                    stderr=plan.stderr_name,
                    state="running",
                    launched=now,
                )
                rows.append((task_id, plan, directories, run_dir))
        for task_id, plan, directories, run_dir in rows:
            self._known_started.add(task_id)
            shutil.rmtree(run_dir, ignore_errors=True)
            self._start_task(job, context, nodes, backend, plan, directories, run_dir, phase)

    def _plan_phase(
        self, job: Job, context: launch.JobContext, nodes: list[launch.NodeContext], phase: str
    ) -> list[tuple[launch.TaskPlan, tuple[NodeDirectory, ...]]]:
        return node_view.plan_on_nodes(
            launch.plan_job_preparation if phase == "prep" else launch.plan_tasks,
            context,
            nodes,
            self._node_paths(self.backend_for(job.workspace, job.cluster), job.node_ids),
        )

    def _start_task(
        self,
        job: Job,
        context: launch.JobContext,
        nodes: list[launch.NodeContext],
        backend: DetachedTasks,
        plan: launch.TaskPlan,
        directories: tuple[NodeDirectory, ...],
        run_dir: str,
        phase: str,
    ) -> None:
        node = nodes[plan.node_index]
        node_row = self.store.existing_node(job.node_ids[plan.node_index])
        if not isinstance(backend, RemoteNodes):
            directories = self._directories_here(job, context, nodes)
        task = TaskLaunch(
            command=plan.command,
            env={**context.node_base_env, **plan.env},  # the service's environment, read for this context
            cwd=node.job_temp,
            stdout=os.path.join(context.stdouterr_dir, plan.stdout_name),
            stderr=os.path.join(context.stdouterr_dir, plan.stderr_name),
            directories=directories,
            exclusive=EXCLUSIVE_PREPARATION if phase == "prep" else "",
        )
        spec = context.spec
        if spec.container is not None:
            name = container_name(job.uuid, job.attempt, plan.name)
            remote = isinstance(backend, RemoteNodes)
            # what the backend adds on the node (RemoteNodes.task_environment) must reach the container too
            names = [*plan.env, *(backend.task_environment(node_row) if isinstance(backend, RemoteNodes) else ())]
            task = self.containers.task_launch(spec, node_row, name, task, names, remote)
        backend.start_task(node_row, run_dir, task)
        self._log_execution(context, nodes, node, f"{phase} task {plan.name} ({plan.role}) started")

    def _directories_here(
        self, job: Job, context: launch.JobContext, nodes: list[launch.NodeContext]
    ) -> tuple[NodeDirectory, ...]:
        """What a task on a node that sees the service's files needs of them (the local backend's sandbox
        shows these and nothing else of the service's home): the job's inputs, outputs, checkpoints and
        shared temp, what its mounts show, and its directories on each of its nodes (an MPI rank of every
        node starts inside the master's task). From the service's records, never from what a task wrote."""
        mounts = [NodeDirectory(path, path, "mount") for path in self.data.mount_sources(job)]
        own = [NodeDirectory(p, p, "node") for node in nodes for p in (node.job_temp, node.mount_root)]
        return (*node_view.directories(context, lambda path: path), *mounts, *own)

    def _start_if_never_started(self, job: Job, backend: DetachedTasks, task: Task) -> bool:
        """A task recorded by a service that died before it handed it over is handed over now: a
        kill -9 at any moment loses no task (and runs none twice: see DetachedTasks.task_started).
        That counts as an interruption of the attempt; False when it was one too many (the job has ended)."""
        self._known_started.add(task.id)
        if not task.run_dir or backend.task_started(self.store.existing_node(task.node_id), task.run_dir):
            return True
        if self._interrupted_too_often(job, "handing over the tasks of"):
            return False
        self.store.update("jobs", {"id": job.id}, interruptions=job.interruptions + 1)
        context, nodes = self.context(job)
        for plan, directories in self._plan_phase(job, context, nodes, task.phase):
            if plan.name == task.name:
                os.makedirs(task.run_dir, exist_ok=True)
                self._start_task(job, context, nodes, backend, plan, directories, task.run_dir, task.phase)
                break
        return True

    def _log_execution(
        self, context: launch.JobContext, nodes: Sequence[launch.NodeContext], node: launch.NodeContext, message: str
    ) -> None:
        name = launch.execution_log_name(node, len(nodes))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with open(os.path.join(context.stdouterr_dir, name), "a") as handle:
            handle.write(f"{stamp} {message}\n")

    # -- watching --------------------------------------------------------------------------

    def poll(self, job: Job) -> list[Task] | None:
        """Records the end of any task of the job's current phase; returns the phase's tasks as they are now
        (None: the job has ended instead, handed over too often)."""
        backend = self.backend_for(job.workspace, job.cluster)
        tasks = []
        for task in self.store.tasks_of(job.id, job.attempt):
            if task.phase != job.phase:
                continue
            if task.state == "running":
                if task.id not in self._known_started and isinstance(backend, DetachedTasks):
                    if not self._start_if_never_started(job, backend, task):
                        return None
                status = backend.poll_task(self.store.existing_node(task.node_id), task.run_dir, task.launched)
                if status.state != "running":
                    ended = time.time()
                    moved = self.store.set_task_state(
                        task.id,
                        TaskEvent.EXITED if status.state == "exited" else TaskEvent.LOST,
                        exit_code=status.exit_code,
                        ended=ended,
                    )
                    task = dataclasses.replace(
                        task,
                        state=moved.state if moved else task.state,
                        exit_code=status.exit_code,
                        ended=ended,
                        detail=status.detail or "",
                    )
            tasks.append(task)
        return tasks

    def advance(self, job: Job) -> None:
        """Moves a running job on once its current phase's tasks (or mount commands) have ended."""
        if job.phase == lifecycle.JobPhase.MOUNT and job.state == "running":
            self._advance_mounting(job)
            return
        tasks = self.poll(job)
        if tasks is None:
            return
        self.data.flush(job, final=False)
        if job.state == "terminating":
            self._advance_termination(job, tasks)
            return
        outcome = lifecycle.phase_outcome(
            job.phase, [lifecycle.TaskBrief(t.state, t.exit_code, t.required) for t in tasks]
        )
        if outcome is None:
            return
        if outcome == JobEvent.TASK_FAILED:
            failed = [t for t in tasks if t.state == "lost" or (t.state == "exited" and t.exit_code != 0)]
            self.attempt_failed(job, self._failure_error(job, failed[0]), failed[0].exit_code)
        elif outcome == JobEvent.PREP_DONE:
            context, nodes = self.context(job)
            self._launch_phase(job, context, nodes, "main")
        elif outcome == JobEvent.INTERRUPTED:
            self._interrupted(job, "ending" if tasks else "starting")
        else:  # succeeded; parameter servers, which never end by themselves, are killed with the rest
            self.end(job, outcome, 0)

    def _interrupted(self, job: Job, doing: str) -> None:
        """Runs an interrupted attempt again, unless the service's stopping interrupted the job's last attempts
        too (a start that takes the service down with it would otherwise loop for ever)."""
        if not self._interrupted_too_often(job, doing):
            stopped = f"the service stopped while it was {doing} attempt {job.attempt}"
            message = f"{stopped}; the job runs again (not counted as a retry)"
            self.end(job, JobEvent.INTERRUPTED, None, [error("AttemptInterrupted", message)])

    def _interrupted_too_often(self, job: Job, doing: str) -> bool:
        """Ends the job failed when this interruption is its MAX_INTERRUPTIONS-th in a row."""
        count = job.interruptions + 1
        if count < lifecycle.MAX_INTERRUPTIONS:
            return False
        message = (
            f"the service stopped while it was {doing} attempt {job.attempt}: {count} interruptions in a row, so "
            "the job is not tried again. The service's log says what stopped it; submit the job again once that "
            "is fixed"
        )
        self.end(job, JobEvent.INTERRUPTED_AGAIN, None, [error("AttemptsInterrupted", message)])
        return True

    def _failure_error(self, job: Job, task: Task) -> dict[str, Any]:
        node = self.store.node(task.node_id)
        where = f"node {node.name if node else task.node_id}"
        logs = f"see {task.stdout} and {task.stderr}"
        if task.state == "lost":
            why = task.detail or "its process vanished"
            return error("TaskLost", f"task {task.name} on {where} was lost ({why}); {logs}")
        if task.phase == "prep":
            return error(
                "JobPreparationFailed", f"job preparation failed on {where} with exit code {task.exit_code}; {logs}"
            )
        why = f" ({task.detail})" if task.detail else ""  # e.g. the disk was full when it ended
        return error("JobFailed", f"task {task.name} on {where} exited with code {task.exit_code}{why}; {logs}")

    # -- ending ----------------------------------------------------------------------------

    def kill_tasks(self, job: Job, tasks: list[Task], force: bool) -> None:
        backend = self.backend_for(job.workspace, job.cluster)
        for task in tasks:
            # With force also a task that ended: what it left running must not outlive its job.
            # (A scheduler backend's tasks, without a run directory, end with their allocation.)
            if task.run_dir and (force or task.state == "running"):
                backend.kill_task(self.store.existing_node(task.node_id), task.run_dir, force=force)
        if force:
            self.store.record_killed(tasks)

    def terminate(self, job: Job, errors: list[dict[str, Any]]) -> None:
        """Signals a running job's tasks; the job fails with `errors` once they have ended."""
        self.end(job, JobEvent.TERMINATE, None, errors)

    def _advance_termination(self, job: Job, tasks: list[Task]) -> None:
        running = [t for t in tasks if t.state == "running"]
        if running and time.time() - job.state_since < TERMINATE_GRACE_SECONDS:
            return
        codes = [t.exit_code for t in tasks if t.exit_code not in (None, 0)]
        self.end(job, JobEvent.TASKS_STOPPED, codes[0] if codes else None)

    def attempt_failed(self, job: Job, failure: dict[str, Any], exit_code: int | None, node_lost: bool = False) -> None:
        max_retries = job.spec.max_retries
        event = lifecycle.failure_event(job.retries_used, max_retries, node_lost)
        if event in (JobEvent.TASK_FAILED_RETRY, JobEvent.NODE_LOST_RETRY):
            retry = job.retries_used + 1
            note = error(
                "AttemptFailed",
                f"attempt {job.attempt} failed ({failure['message']}); retry {retry} of {max_retries} queued",
            )
            self.end(job, event, None, [note])
        else:
            self.end(job, event, exit_code, [failure])

    def end(
        self, job: Job, event: JobEvent, exit_code: int | None = None, errors: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Moves the job by `event`: the lifecycle's effects, in its order, then the new state.
        (ClaimNodes, PrepareAndLaunch and LaunchMain are `start`'s and `advance`'s own work;
        CancelInScheduler the hand-over's.)"""
        job = self.store.job(job.id) or job
        _done, cancelled = self._mounting.pop((job.id, job.attempt), (None, None))
        if cancelled is not None:  # a mount command still running stops: nobody waits for it any more
            cancelled.set()
        transition = lifecycle.job_transition(job.state, event)  # an illegal event changes nothing
        errors, values, upload_errors = list(errors), {}, []
        for effect in transition.effects:
            if isinstance(effect, lifecycle.KillTasks):
                self.kill_tasks(job, self.store.tasks_of(job.id, job.attempt), force=effect.force)
            elif isinstance(effect, lifecycle.ArchiveLogs):
                self._archive_logs(job)
            elif isinstance(effect, lifecycle.FlushOutputs):
                upload_errors = self._unmount(job) + self.data.flush(job, final=True)
            elif isinstance(effect, lifecycle.NextAttempt):
                values = dict(
                    phase="",
                    attempt=job.attempt + 1,
                    node_ids=[],
                    started=None,
                    retries_used=job.retries_used + int(effect.count_as_retry),
                    interruptions=job.interruptions + 1 if event == JobEvent.INTERRUPTED else 0,
                )
        if upload_errors and transition.state == lifecycle.JobState.SUCCEEDED:
            event = JobEvent.OUTPUTS_FAILED
        if transition.state in (lifecycle.JobState.SUCCEEDED, lifecycle.JobState.FAILED):
            values = dict(phase="", ended=time.time(), exit_code=exit_code)
        with self.store.transaction():
            if lifecycle.ReleaseNodes() in transition.effects:
                self._release_nodes(job)
            moved = self.store.set_job_state(job.id, event, errors=job.errors + errors + upload_errors, **values)
        state = moved.state if moved else transition.state
        extra = (
            {"attempt": values["attempt"]}
            if "attempt" in values
            else {"exitCode": exit_code}
            if "ended" in values
            else {}
        )
        self.events.publish("job", **_job_key(job), state=state, **extra)

    def _release_nodes(self, job: Job) -> None:
        for node_id in job.node_ids:
            node = self.store.node(node_id)
            if node is None or node.job_id != job.id:
                continue
            self.store.set_node_state(node_id, NodeEvent.RELEASED, job_id=None)

    def _archive_logs(self, job: Job) -> None:
        """Keeps an attempt's logs in stdouterr/attempt-<n>/ so the next attempt starts clean."""
        directory = self._placed_path(job, placement.STDOUTERR)
        if not os.path.isdir(directory):
            return
        archive = os.path.join(directory, f"attempt-{job.attempt}")
        os.makedirs(archive, exist_ok=True)
        for entry in os.listdir(directory):
            path = os.path.join(directory, entry)
            if os.path.isfile(path):
                os.replace(path, os.path.join(archive, entry))


def _job_key(job: Job) -> dict[str, Any]:
    return {"workspace": job.workspace, "experiment": job.experiment, "name": job.name}


def _default_python() -> str:
    import sys

    return sys.executable
