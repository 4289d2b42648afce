"""The internal job and cluster specs every input dialect is parsed into.

These dataclasses are the one schema the service works with; `spec.py` and `cluster_spec.py` build
them from the native spec or Batch AI's job.json / cluster.json (once, at submit), `spec_codec.py`
stores them as versioned JSON and reads them back strictly, and `views.py` turns the Store's records
into the camelCase JSON the API returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TOOLKITS = (
    "custom",
    "customMpi",
    "pytorch",
    "tensorflow",
    "horovod",
    "chainer",
    "cntk",
    "caffe",
    "caffe2",
)
# Toolkits Batch AI launched by wrapping the command in mpirun.
MPI_TOOLKITS = ("customMpi", "horovod", "chainer", "cntk")

JOB_STATES = ("queued", "running", "terminating", "succeeded", "failed")
FINAL_JOB_STATES = ("succeeded", "failed")
NODE_STATES = ("preparing", "idle", "running", "leaving", "unusable")

PRIORITY_BY_NAME = {"low": -100, "normal": 0, "high": 100}
DEFAULT_MAX_WALL_CLOCK_SECONDS = 7 * 24 * 3600.0
DEALLOCATION_OPTIONS = ("requeue", "terminate", "waitforjobcompletion")
# Upper bounds checked at submit: a typo such as nodeCount 100000 is a clear 400, not hours of
# provisioning. Batch AI's own clusters and jobs stayed far below these.
MAX_NODES_PER_CLUSTER = 1000
MAX_PROCESSES_PER_JOB = 100000

DEFAULT_WORKSPACE = "default"
DEFAULT_EXPERIMENT = "default"
DEFAULT_DATASTORE = "default"


def priority_name(value: int) -> str | int:
    """The name of a scheduling priority when it is one of the three, else the integer."""
    for name, number in PRIORITY_BY_NAME.items():
        if number == value:
            return name
    return value


@dataclass
class ToolkitSettings:
    """One toolkit block. Fields not used by `kind` stay at their defaults."""

    kind: str = "custom"
    command_line: str = ""  # custom, customMpi
    python_script: str = ""  # pythonScriptFilePath
    python_interpreter: str = ""  # pythonInterpreterPath; empty means "python"
    args: str = ""  # commandLineArgs
    process_count: int | None = None  # None: the toolkit's default (usually nodeCount)
    communication_backend: str = "gloo"  # pytorch
    master_args: str = ""  # tensorflow masterCommandLineArgs
    worker_args: str = ""  # tensorflow workerCommandLineArgs
    ps_args: str = ""  # tensorflow parameterServerCommandLineArgs
    worker_count: int | None = None  # tensorflow
    ps_count: int | None = None  # tensorflow
    tf_config_chief: bool = False  # opt-in TF_CONFIG with a `chief` task for tf.estimator
    language: str = ""  # cntk: BrainScript | Python
    config_file: str = ""  # cntk BrainScript configFilePath, caffe solver


@dataclass
class InputDirectory:
    id: str
    path: str


@dataclass
class OutputDirectory:
    id: str
    path_prefix: str = ""
    path_suffix: str = ""


@dataclass
class ContainerSettings:
    """Batch AI's job-level containerSettings: the image the job's tasks run in, and where it comes from."""

    image: str
    server_url: str = ""  # the registry; empty: the image name says (or the runtime's default)
    username: str = ""
    # Never stored with the spec: the store keeps it with the job's secrets (REGISTRY_PASSWORD).
    password: str = ""
    shm_size: str = ""  # /dev/shm's size, as Batch AI's shmSize ("2g"); empty: the runtime's default


# The key of a job's registry password among its stored secrets: not a variable name, so no task sees it.
REGISTRY_PASSWORD = "batchai:registryPassword"


@dataclass
class JobSpec:
    name: str
    cluster: str
    toolkit: ToolkitSettings
    workspace: str = DEFAULT_WORKSPACE
    experiment: str = DEFAULT_EXPERIMENT
    node_count: int = 1
    priority: int = 0
    max_wall_clock_seconds: float = DEFAULT_MAX_WALL_CLOCK_SECONDS
    max_retries: int = 0
    job_preparation: str = ""
    input_directories: list[InputDirectory] = field(default_factory=list)
    output_directories: list[OutputDirectory] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    # Secret values travel only inside the service; the store keeps them apart from the spec
    # and the API returns their names only.
    secrets: dict[str, str] = field(default_factory=dict)
    std_out_err_path_prefix: str = ""
    mount_volumes: dict[str, Any] | None = None  # raw MountVolumes block, resolved by storage
    api_version: str = "native"  # native | 2017-09-01-preview | 2018-03-01 | 2018-05-01
    # The run's parameters as the user names them ({"lr": 0.01}): shown in the run history, and given to
    # the job as $BATCHAI_PARAMS (JSON). Sweeps set their trials' sampled values here.
    params: dict[str, Any] = field(default_factory=dict)
    container: ContainerSettings | None = None  # the image the tasks run in; None: on the node itself


def stored_secrets(spec: JobSpec) -> dict[str, str]:
    """What the store keeps apart from a job's spec: its secret variables and its registry password."""
    password = spec.container.password if spec.container else ""
    return {**spec.secrets, **({REGISTRY_PASSWORD: password} if password else {})}


@dataclass
class SetupTask:
    command_line: str
    environment: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    std_out_err_path_prefix: str = ""


@dataclass
class ScaleSettings:
    """Manual (`target`) or auto-scale (`minimum`..`maximum`), as Batch AI's scaleSettings."""

    mode: str = "manual"  # manual | auto
    target: int = 1
    minimum: int = 0
    maximum: int = 0
    initial: int = 0
    node_deallocation_option: str = "requeue"
    idle_seconds_before_scaledown: float = 300.0


@dataclass
class ClusterSpec:
    name: str
    workspace: str = DEFAULT_WORKSPACE
    backend: str = "local"
    vm_size: str = "local"
    vm_priority: str = "dedicated"  # dedicated | lowpriority
    cpus_per_node: int = 1
    gpus_per_node: int = 0
    memory_mb_per_node: int = 0
    scale: ScaleSettings = field(default_factory=ScaleSettings)
    setup_task: SetupTask | None = None
    mount_volumes: dict[str, Any] | None = None
    native_mounts: bool = False  # nodes with the tool mount Blob containers and file shares themselves
    backend_options: dict[str, Any] = field(default_factory=dict)  # hosts, keys, partition... per backend
    api_version: str = "native"
    # containerRuntime: {"name": "podman" | "apptainer", options...}; None: what each node has (containers.py)
    container_runtime: dict[str, Any] | None = None

    @property
    def max_nodes(self) -> int:
        return self.scale.target if self.scale.mode == "manual" else self.scale.maximum
