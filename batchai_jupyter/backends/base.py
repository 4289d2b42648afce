"""The small protocol a compute backend answers.

Node-pool backends (local, ssh, azure) get nodes from the service's scheduler and run one task
at a time under the runtime wrapper, which leaves pid / heartbeat / exit files in the task's run
directory on the node. Everything the service needs to re-attach after a restart is in those files.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Protocol

from ..core.layout import HomeLayout
from ..errors import BatchAIError


@dataclass(frozen=True)
class BackendContext:
    """What a backend factory is given: the service's home and this backend's own configuration."""

    layout: HomeLayout
    heartbeat_seconds: float = 2.0
    all_options: Mapping[str, dict] = field(default_factory=dict)  # BatchAIApp.backend_options
    options: Mapping = field(default_factory=dict)  # this backend's entry of all_options

    def for_backend(self, name: str) -> "BackendContext":
        return replace(self, options=dict(self.all_options.get(name) or {}))


@dataclass(frozen=True)
class NodePlacement:
    """What provisioning a node learned about it."""

    ip: str  # the address other tasks reach it at
    mpi_host: str  # the name written to MPI hostfiles
    cpus: int
    gpus: int
    root: str  # the node's sandbox directory (mounts/, jobs/, run/ live under it)
    port: int | None = None  # where users log in to it (SSH), shown by `cluster node list`
    extra: Mapping = field(default_factory=dict)  # the backend's own facts, kept in the node's info


@dataclass(frozen=True)
class TaskStatus:
    state: str  # "running" | "exited" | "lost"
    exit_code: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class TaskLaunch:
    command: str
    env: Mapping[str, str]
    cwd: str
    stdout: str
    stderr: str


class ComputeBackend(Protocol):
    name: str

    def provision(self, cluster: dict, node: dict) -> NodePlacement: ...

    def release(self, cluster: dict, node: dict) -> None: ...

    def start_task(self, node: dict, run_dir: str, launch: TaskLaunch) -> None: ...

    def poll_task(self, node: dict, run_dir: str, launched_at: float) -> TaskStatus: ...

    def kill_task(self, node: dict, run_dir: str, force: bool = False) -> None: ...

    def write_text(self, node: dict, path: str, text: str) -> None: ...

    def set_wakeup(self, callback: Callable[[], None]) -> None: ...


# -- scheduler backends ---------------------------------------------------------------------------
# A scheduler backend (slurm) has its own scheduler: it allocates the nodes and runs a job's whole
# gang itself. The service hands each queued job to it (core/handover.py) instead of placing tasks.


@dataclass(frozen=True)
class SchedulerNode:
    """One node as the scheduler reports it, in our node states."""

    name: str
    state: str  # idle | running | unusable | preparing
    ip: str
    cpus: int
    gpus: int
    reason: str = ""  # why it is unusable, in the scheduler's words


@dataclass(frozen=True)
class GangRequest:
    """One attempt of one job, for the scheduler to allocate nodes to and run."""

    key: str  # unique per attempt: "<job uuid>-<attempt>"
    job_name: str
    context: object  # core.launch.JobContext: everything but the nodes (the allocation decides those)
    node_count: int
    max_wall_clock_seconds: float  # the spec's value; `explicit_wall_clock` says whether the user set it
    explicit_wall_clock: bool
    priority: int


@dataclass(frozen=True)
class GangTask:
    """One task of a running gang, as its files on the shared file system tell."""

    name: str
    node: str
    phase: str  # "prep" | "main"
    role: str
    rank: int
    required: bool
    stdout: str
    stderr: str
    state: str  # "running" | "exited" | "killed" (stopped when the gang ended)
    exit_code: int | None = None
    launched: float | None = None
    ended: float | None = None


# Gang states: queued, running (in the scheduler); succeeded, failed (a task failed), lost (the
# allocation died under it: a node failure, or the job vanished), timeout, cancelled (ended).
GANG_ENDED = ("succeeded", "failed", "lost", "timeout", "cancelled")


@dataclass(frozen=True)
class GangStatus:
    state: str
    nodes: tuple[str, ...] = ()
    tasks: tuple[GangTask, ...] = ()
    exit_code: int | None = None
    error: dict | None = None  # {"code", "message"} for an unsuccessful end
    reason: str = ""  # why a queued gang waits, in the scheduler's words


class SchedulerBackend(Protocol):
    name: str
    schedules_jobs: bool  # True: the core hands whole jobs over instead of placing tasks

    def scheduler_nodes(self, cluster: dict) -> list[SchedulerNode]: ...

    def node_cap(self, cluster: dict) -> int | None: ...

    def submit(self, cluster: dict, request: GangRequest) -> None: ...

    def poll(self, cluster: dict, keys: list[str]) -> dict[str, GangStatus]: ...

    def cancel(self, cluster: dict, key: str) -> None: ...

    def forget(self, cluster: dict, key: str) -> None: ...  # optional: the job was deleted

    def set_wakeup(self, callback: Callable[[], None]) -> None: ...


class SchedulerUnavailable(BatchAIError):
    """The scheduler cannot be reached just now (its controller is down, its login node does not
    answer): what was asked is tried again later, nothing fails for it."""

    def __init__(self, message: str):
        super().__init__("SchedulerUnavailable", message, status=503)


def schedules_jobs(backend: object) -> bool:
    """True for a scheduler backend, whose own scheduler places and runs whole jobs."""
    return bool(getattr(backend, "schedules_jobs", False))
