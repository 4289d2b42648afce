"""What the core asks of a compute backend, as small capabilities a backend declares by inheriting them.

The core checks a capability with `isinstance(backend, Capability)`, never by probing attributes, so a
backend does exactly what its class line says. Two kinds of backend:

- Node-pool backends (local, ssh) get nodes from the service's scheduler (`NodePool`) and run one task
  at a time on a node as a detached process (`DetachedTasks`), under the runtime wrapper, which leaves
  pid / heartbeat / exit files in the task's run directory on the node: everything the service needs to
  re-attach after a restart is in those files. `ComputeBackend` is the two together with `NodeFiles`.
- Scheduler backends (slurm) have their own scheduler (`SchedulerBackend`): it allocates the nodes and
  runs a job's whole gang itself; the service hands each queued job over (core/handover.py).

Optional capabilities: `ChecksClusters`, `NodeHealth`, `NodeLoad`, `NodeExec`, `NodeScripts`, `RemoteNodes`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ..errors import BatchAIError
from .layout import HomeLayout


class _PrivateNames:
    """The rule for variables of the service's own process that must never reach a job, a node or a
    scheduler: its tokens and every name that looks like a credential (`name in PRIVATE_ENV`). A job's
    own environment and secrets come from its spec and are not filtered."""

    NAMES = frozenset({"BATCHAI_TOKEN", "JUPYTER_TOKEN", "SSH_AUTH_SOCK", "KRB5CCNAME", "DATABASE_URL"})
    PREFIXES = ("JPY_", "JUPYTERHUB_", "AZURE_", "AWS_SECRET", "AWS_SESSION", "GOOGLE_APPLICATION_")
    WORDS = (
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "CREDENTIAL",
        "CONNECTION_STRING",
        "CONNECTIONSTRING",
        "APIKEY",
        "API_KEY",
        "ACCESS_KEY",
        "ACCOUNT_KEY",
        "PRIVATE_KEY",
        "SAS_URL",
        "AUTH",
    )
    SUFFIXES = ("_KEY", "_PASS", "_PWD", "_SAS")

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        upper = name.upper()
        return (
            upper in self.NAMES
            or upper.startswith(self.PREFIXES)
            or upper.endswith(self.SUFFIXES)
            or any(word in upper for word in self.WORDS)
        )


PRIVATE_ENV = _PrivateNames()

# What a task gets of the service's environment (before its job's spec and the AZ_BATCHAI_* contract): the
# basics a shell, Python, MPI and CUDA need, never the rest (tokens, the service's own settings).
TASK_ENV_NAMES = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TZ", "LANG", "LANGUAGE",
        "TMPDIR", "TEMP", "TMP", "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "CONDA_EXE",
        "PYTHONPATH", "PYTHONHOME", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
        "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH", "MANPATH", "PKG_CONFIG_PATH", "JAVA_HOME",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
        "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF",
    }
)  # fmt: skip
TASK_ENV_PREFIXES = ("LC_", "OMPI_", "PMIX_", "UCX_", "NCCL_", "CUDA_", "NVIDIA_", "OMP_", "MKL_", "I_MPI_", "XDG_")


def task_base_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of `environ` (the service's) that a task starts with: the basics, never a private name."""
    return {
        name: value
        for name, value in environ.items()
        if (name in TASK_ENV_NAMES or name.startswith(TASK_ENV_PREFIXES)) and name not in PRIVATE_ENV
    }


# (script, stdin) -> (exit code, output): runs a bash script on one node.
NodeScript = Callable[[str, str], tuple[int, str]]


class ClusterSpecRef(Protocol):
    """What backends and storage read of a cluster's spec: the core's ClusterSpec fits it."""

    @property
    def backend_options(self) -> dict[str, Any]: ...

    @property
    def cpus_per_node(self) -> int: ...

    @property
    def gpus_per_node(self) -> int: ...

    @property
    def native_mounts(self) -> bool: ...

    @property
    def mount_volumes(self) -> dict[str, Any] | None: ...

    @property
    def vm_size(self) -> str: ...

    @property
    def vm_priority(self) -> str: ...  # dedicated | lowpriority

    @property
    def max_nodes(self) -> int: ...  # the most nodes the cluster may have (its target, or auto-scale's maximum)

    @property
    def container_runtime(self) -> dict[str, Any] | None: ...  # containerRuntime: for jobs in images


class ClusterRef(Protocol):
    """A cluster as backends and storage see it: the core's Cluster record fits it."""

    @property
    def workspace(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def uuid(self) -> str: ...

    @property
    def spec(self) -> ClusterSpecRef: ...

    @property
    def target(self) -> int: ...  # the node count the service keeps it at now

    @property
    def deleting(self) -> bool: ...


class NodeRef(Protocol):
    """A node as backends see it: the core's Node record fits it."""

    @property
    def id(self) -> int: ...

    @property
    def workspace(self) -> str: ...

    @property
    def cluster(self) -> str: ...  # its cluster's name

    @property
    def name(self) -> str: ...

    @property
    def ip(self) -> str: ...

    @property
    def info(self) -> dict[str, Any]: ...  # what its backend placed it with (NodePlacement, extra)


@dataclass(frozen=True)
class BackendContext:
    """What a backend factory is given: the service's home and this backend's own configuration."""

    layout: HomeLayout
    heartbeat_seconds: float = 2.0
    all_options: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # BatchAIApp.backend_options
    options: Mapping[str, Any] = field(default_factory=dict)  # this backend's entry of all_options
    # The core's task planner as source files ({name in package `batchai_launch`: path}), for a backend
    # that plans a gang's tasks where it runs (Slurm's driver, on the allocation).
    planner_files: Mapping[str, str] = field(default_factory=dict)

    def for_backend(self, name: str) -> BackendContext:
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
    extra: Mapping[str, Any] = field(default_factory=dict)  # the backend's own facts, kept in the node's info


@dataclass(frozen=True)
class TaskStatus:
    state: str  # "running" | "exited" | "lost"
    exit_code: int | None = None
    detail: str = ""


def exited_status(record: dict[str, Any]) -> TaskStatus:
    """A task's end from its wrapper's exit record (runtime/wrapper.py), with the word that the disk was full
    when the wrapper wrote it into its reserved room (`no_space`: the task's directory)."""
    no_space = record.get("no_space")
    return TaskStatus("exited", int(record["exit_code"]), f"no space left on {no_space}" if no_space else "")


@dataclass(frozen=True)
class NodeDirectory:
    """A directory of the job on the service's machine (`here`) and where the task's node sees it."""

    here: str
    on_node: str
    # "input": read there; "output": written there and copied back; "shared": the job's temp; on a node
    # that sees the service's files also "mount" (what a linked mount shows) and "node" (the job's
    # directories on each of its nodes), which the local backend's sandbox shows and nothing else
    kind: str


@dataclass(frozen=True)
class TaskLaunch:
    command: str  # with paths as the node sees them
    env: Mapping[str, str]  # the same
    cwd: str  # on the node
    stdout: str  # where the service keeps the task's logs (a remote backend streams them there)
    stderr: str
    # What the node must see of the service's directories (RemoteNodes: the backend puts them there).
    directories: tuple[NodeDirectory, ...] = ()
    # Tasks of one host with the same name here run one at a time ("job-preparation": never two package
    # managers at once on nodes that share a machine); "" for none.
    exclusive: str = ""
    in_container: bool = False  # the command runs the job's image, which isolates it (no sandbox of its own)


class Backend(ABC):
    """Every backend: a name (the cluster spec's `backend`) and a way to wake the engine."""

    name: str

    @abstractmethod
    def set_wakeup(self, callback: Callable[[], None]) -> None:
        """`callback` makes the engine run a cycle now (a task ended, a host came back)."""

    def close(self) -> None:  # noqa: B027 (most backends hold nothing to close)
        """Stops the backend's own threads and closes its connections, once, when the service stops.
        Tasks keep running on the nodes: a service started again re-attaches to them."""


class NodePool(Backend):
    """Nodes that the service adds and removes to keep a cluster at its target."""

    @abstractmethod
    def provision(self, cluster: ClusterRef, node: NodeRef) -> NodePlacement: ...

    @abstractmethod
    def release(self, cluster: ClusterRef, node: NodeRef) -> None: ...


class DetachedTasks(ABC):
    """Runs one task on a node as a detached process that the service re-attaches to after a restart."""

    @abstractmethod
    def start_task(self, node: NodeRef, run_dir: str, launch: TaskLaunch) -> None: ...

    @abstractmethod
    def poll_task(self, node: NodeRef, run_dir: str, launched_at: float) -> TaskStatus: ...

    def task_started(self, node: NodeRef, run_dir: str) -> bool:
        """False only for a task that no process took up yet and none will unless it is started again:
        the service that recorded it died before it was handed over. Starting it once more is then
        safe (a task is taken up once however often it was handed over)."""
        return True

    @abstractmethod
    def kill_task(self, node: NodeRef, run_dir: str, force: bool = False) -> None: ...


class NodeFiles(ABC):
    """Writes files on a node (a task's MPI hostfile, ...)."""

    @abstractmethod
    def write_text(self, node: NodeRef, path: str, text: str) -> None: ...


class ComputeBackend(NodePool, DetachedTasks, NodeFiles):
    """A node-pool backend: the service places tasks on its nodes."""


class CloudClusters(ABC):
    """Clusters with resources of their own somewhere (a cloud's resource group): made with the first
    node, deleted with the cluster once its nodes are removed."""

    @abstractmethod
    def delete_cluster(self, cluster: ClusterRef) -> None:
        """Deletes what the cluster had; returns when it is gone."""


class VanishingNodes(ABC):
    """Nodes whose machine can go for good (a Spot VM evicted): the service removes such a node and
    provisions another while the cluster is below its target."""

    @abstractmethod
    def node_gone(self, node: NodeRef) -> bool: ...


class ChecksClusters(ABC):
    """Checks a new cluster's backendOptions before the cluster is stored."""

    @abstractmethod
    def check_cluster(self, spec: ClusterSpecRef) -> None:
        """Raises BatchAIError naming the option at fault."""


class NeedsSiteSetup(ABC):
    """A backend that can create clusters only once the site has configured it (an Azure subscription)."""

    @abstractmethod
    def missing_setup(self) -> str | None:
        """What the site must configure first (and how), or None when clusters can be created."""


class NodeHealth(ABC):
    """Knows whether a node is reachable, without running a task there."""

    @abstractmethod
    def node_health(self, node: NodeRef) -> str | None:
        """None while the node is healthy, else why it is not."""


@dataclass(frozen=True)
class Usage:
    """CPU (percent of all the cores it counts, 0-100) and memory in bytes; None where unknown."""

    cpu_percent: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None


@dataclass(frozen=True)
class GpuUsage:
    index: int
    utilization_percent: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None


@dataclass(frozen=True)
class LoadSample:
    """What a node is using, as last sampled. `scope` says what `usage` counts: "node" (the node is
    its own machine: all of it) or "tasks" (nodes that share one machine: the processes of this
    node's tasks, with `machine` the shared machine's totals). `gpus`: None where no GPU could be read."""

    sampled: float  # unix time
    scope: str
    usage: Usage
    machine: Usage | None = None
    gpus: tuple[GpuUsage, ...] | None = None


class NodeLoad(ABC):
    """Samples what its nodes use (CPU, memory, GPUs), at most every few seconds, on the node side."""

    @abstractmethod
    def node_load(self, node: NodeRef) -> LoadSample | None:
        """The node's latest sample; None while there is none (not sampled yet, or not readable)."""


class NodeExec(ABC):
    """Runs a user's shell command on a node (`cluster node exec`)."""

    @abstractmethod
    def exec(self, node: NodeRef, command: str, timeout: float = 300.0) -> tuple[int, str, str]:
        """(exit code, stdout, stderr)."""


class NodeScripts(ABC):
    """Runs the service's own scripts (native mounts, unmounts) on a node."""

    @abstractmethod
    def run_script(self, node: NodeRef, script: str, stdin: str = "") -> tuple[int, str]: ...

    def run_script_streaming(
        self, node: NodeRef, script: str, stdin: str, sink: Callable[[str], None]
    ) -> tuple[int, str]:
        """run_script, handing each line of its output to `sink` as it comes (here: once it has ended;
        a backend that can read its output while it runs says so by overriding this)."""
        code, output = self.run_script(node, script, stdin)
        for line in output.splitlines():
            if line.strip():
                sink(line)
        return code, output


class RemoteNodes(ABC):
    """Nodes that are other machines: they do not see the service's files, so the backend stages inputs
    and mounts onto them and makes their directories itself, and picks ports on them."""

    @abstractmethod
    def node_path(self, node: NodeRef, path: str) -> str:
        """Where the node sees the service's directory `path` (a datastore's node_path, the job's shared
        temp): where the backend stages it to, or `path` itself on a file system the node shares."""

    @abstractmethod
    def free_port(self, node: NodeRef) -> int:
        """A TCP port free on the node (the job's master port)."""

    @abstractmethod
    def task_environment(self, node: NodeRef) -> dict[str, str]:
        """The variables the backend gives every task it starts on the node (how the node reaches the
        job's other hosts: mpirun's remote shell, the frameworks' network interface); a task in an image
        is passed them too."""

    @abstractmethod
    def show_mounts(self, node: NodeRef, mount_root: str, mounts: list[Any]) -> None:
        """Puts each mount (storage's Mount) at <mount_root>/<relative path> on the node: a copy of its
        source directory, or the result of its mount command."""


# -- scheduler backends ---------------------------------------------------------------------------


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
    context: Any  # core.launch.JobContext: everything but the nodes (the allocation decides those)
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
    error: dict[str, str] | None = None  # {"code", "message"} for an unsuccessful end
    reason: str = ""  # why a queued gang waits, in the scheduler's words


class SchedulerBackend(Backend):
    """Takes whole jobs: the core hands each queued job over instead of placing its tasks."""

    @abstractmethod
    def scheduler_nodes(self, cluster: ClusterRef) -> list[SchedulerNode]: ...

    @abstractmethod
    def node_cap(self, cluster: ClusterRef) -> int | None: ...

    @abstractmethod
    def submit(self, cluster: ClusterRef, request: GangRequest) -> None: ...

    @abstractmethod
    def poll(self, cluster: ClusterRef, keys: list[str]) -> dict[str, GangStatus]: ...

    @abstractmethod
    def cancel(self, cluster: ClusterRef, key: str) -> None: ...

    @abstractmethod
    def forget(self, cluster: ClusterRef, key: str) -> None:
        """The job was deleted: drop what was kept for this attempt."""


class SchedulerUnavailable(BatchAIError):
    """The scheduler cannot be reached just now (its controller is down, its login node does not
    answer): what was asked is tried again later, nothing fails for it."""

    def __init__(self, message: str):
        super().__init__("SchedulerUnavailable", message, status=503)
