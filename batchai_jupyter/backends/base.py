"""The small protocol a compute backend answers.

Node-pool backends (local, ssh, azure) get nodes from the service's scheduler and run one task
at a time under the runtime wrapper, which leaves pid / heartbeat / exit files in the task's run
directory on the node. Everything the service needs to re-attach after a restart is in those files.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Protocol

from ..core.layout import HomeLayout


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
