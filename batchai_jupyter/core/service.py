"""The service: workspaces, experiments, datastores, clusters and jobs, as the API sees them.

Pure of HTTP and Jupyter: the server extension, `batchai serve` and the tests all drive it
through these methods. Long-running work happens in the Engine's thread.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple, cast

from ..errors import BatchAIError, Conflict, NotFound, SpecError, storage_failure
from ..ports.compute import Backend, ChecksClusters, ComputeBackend, NeedsSiteSetup, NodeExec, NodeLoad, task_base_env
from ..ports.datastores import (
    Checkable,
    CountsTransfers,
    CreatesContainer,
    Datastore,
    DatastoreContext,
    DatastoreKinds,
    DeletesFiles,
    DownloadLinks,
    PublicSettings,
    clean_relative_path,
)
from ..ports.layout import HomeLayout, cluster_segment, job_segment, setup_segment
from ..ports.tracking import TENSORBOARD_DIR, RunTracker
from ..runtime.metrics import METRICS_FILE
from . import placement, views
from .cluster_spec import parse_cluster_spec
from .engine import Engine, cluster_key
from .events import EventBus
from .failure_summary import TAIL_BYTES, failure_summary, terminated_by_user
from .handover import HandOver
from .jobrun import JobRunner
from .locations import location_of
from .models import DEFAULT_DATASTORE, DEFAULT_EXPERIMENT, DEFAULT_WORKSPACE, JOB_STATES, JobSpec, stored_secrets
from .names import validate_name, validate_resource_group
from .nodes import NodeKeeper
from .records import Cluster, DatastoreRow, Job, Node
from .runs import RunHistory
from .spec import NATIVE, parse_job_spec
from .spec_codec import encode_cluster_spec, encode_job_spec
from .store import Store
from .store_health import warn_if_home_orphaned
from .sweeps import Sweeps
from .tracking import RunFollower, experiment_tracking

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
DEFAULT_RESOURCE_GROUP = "default"
DEFAULT_LOCATION = "local"
NO_QUOTA = 2**31 - 1

# Backends whose nodes run a job's tasks in its image (core/containers.py).
CONTAINER_BACKENDS = ("local", "ssh", "slurm")


@dataclass
class Settings:
    home: str
    heartbeat_seconds: float = 2.0
    backend_options: dict[str, Any] = field(default_factory=dict)  # {backend name: {option: value}}
    # Batch AI's ARM ids and job folders name a subscription: a service serves one (docs/arm-api.md).
    subscription_id: str = DEFAULT_SUBSCRIPTION
    mlflow_tracking_uri: str = ""  # record every job as an MLflow run there ("": only experiments naming their own)


def _base_env() -> dict[str, str]:
    return task_base_env(os.environ)


class Page(NamedTuple):
    """One page of a listing the store pages itself: its items, and whether more follow."""

    items: list[dict[str, Any]]
    more: bool


class Service:
    """Built with its backends and datastore kinds from outside (batchai_jupyter/assembly.py: build_service),
    so the core imports neither."""

    def __init__(
        self,
        settings: Settings,
        backends: Mapping[str, Backend],
        datastore_kinds: DatastoreKinds,
        unavailable_backends: Mapping[str, str] | None = None,
        trackers: Sequence[RunTracker] = (),
    ):
        self.settings = settings
        self.layout = HomeLayout(settings.home)
        self.store = Store(self.layout.database)
        warn_if_home_orphaned(
            self.store.holds_nothing(),
            self.layout.database,
            self.layout.root,
            [os.path.join(self.layout.root, part) for part in ("datastores", "nodes", "shared")],
        )
        self.events = EventBus()
        self._datastores: dict[tuple[str, str, str, float], Datastore] = {}  # opened once: they keep transfer state
        self._cluster_backends: dict[str, str] = {}  # cluster uuid: its backend's name (a cluster keeps its backend)
        self.datastore_kinds = datastore_kinds
        self.backends = dict(backends)
        self.unavailable_backends = dict(unavailable_backends or {})  # name -> why it did not load
        self.runner = JobRunner(
            self.store,
            self.layout,
            self.events,
            self._backend_for,
            self.datastore,
            _base_env,
            datastore_kinds.job_storage(self.store, self.layout, self.datastore),
        )
        self.keeper = NodeKeeper(
            self.store, self.events, self.runner, self._backend_for, self.datastore, _base_env, self._setup_logs
        )
        self.handover = HandOver(self.store, self.events, self.runner, self.backends)
        self.engine = Engine(self.store, self.runner, self.keeper, self.handover, periodic=lambda: self.sweeps.cycles())
        self.follower = RunFollower(self.store, self.events, self.datastore, trackers)
        self.runs = RunHistory(self.store, self._read_metrics)
        self.sweeps = Sweeps(self.store, self.events, self.engine, self._submit_trial, self.runs.metric_bytes)
        for backend in self.backends.values():
            backend.set_wakeup(self.engine.wake)
        self._lock_handle: IO[str] | None = None
        # (job uuid, attempt) -> the failure summary of a failed job (it ends once): read once, not per view.
        self._failures: dict[tuple[str, int], dict[str, Any]] = {}
        self._ensure_workspace(DEFAULT_WORKSPACE)

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Takes the home's lock (one service per BATCHAI_HOME) and starts the engine."""
        handle = open(self.layout.lock_file, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise BatchAIError(
                "HomeInUse",
                f"another batchai service already manages {self.layout.root}; "
                "stop it, or set BATCHAI_HOME to another directory",
                status=409,
            ) from None
        self._lock_handle = handle
        self.engine.start()
        self.follower.start()

    def stop(self) -> None:
        """Stops the engine and its cluster workers, then closes every backend, datastore and the store;
        tasks keep running on their nodes for the next start to re-attach to."""
        self.engine.stop()
        self.follower.stop()
        for backend in self.backends.values():
            backend.close()
        for datastore in self._datastores.values():
            datastore.close()
        self._datastores.clear()
        if self._lock_handle:
            self._lock_handle.close()
        self.store.close()

    # -- plumbing for the engine ---------------------------------------------------------------

    def _backend_for(self, workspace: str, cluster_name: str) -> ComputeBackend:
        # Asked several times for each job start and end: by uuid, the cluster's spec is decoded once.
        uuid = self.store.cluster_uuid(workspace, cluster_name)
        backend = self._cluster_backends.get(uuid) if uuid else "local"
        if backend is None:
            cluster = self.store.cluster(workspace, cluster_name)
            backend = cluster.spec.backend if cluster else "local"
            if cluster is not None and cluster.uuid == uuid:
                self._cluster_backends[uuid] = backend
        # A scheduler backend's cluster gets here only to release nodes and run scripts on them.
        return cast(ComputeBackend, self.backends[backend])

    def _read_metrics(self, job: Job, offset: int) -> bytes:
        datastore, folder = placement.placement_of(job, placement.STDOUTERR)
        return self.datastore(job.workspace, datastore).read(f"{folder}/{METRICS_FILE}", offset)

    def _submit_trial(self, workspace: str, experiment: str, document: dict[str, Any], name: str) -> None:
        self.create_job(workspace, experiment, document, name=name)

    def datastore(self, workspace: str, name: str = DEFAULT_DATASTORE) -> Datastore:
        row = self._datastore_row(workspace, name)
        key = (workspace, name, row.kind, row.created)
        if key not in self._datastores:
            self._datastores[key] = self.datastore_kinds.open(
                row.kind, {**row.config, **row.secrets}, DatastoreContext(self.layout.root)
            )
        return self._datastores[key]

    # -- workspaces, experiments, datastores ---------------------------------------------------

    def _ensure_workspace(
        self,
        name: str,
        resource_group: str = DEFAULT_RESOURCE_GROUP,
        location: str = DEFAULT_LOCATION,
        tags: dict[str, str] | None = None,
    ) -> None:
        now = time.time()
        with self.store.transaction():
            if self.store.query_one("SELECT name FROM workspaces WHERE name = ?", name):
                return
            self.store.insert(
                "workspaces", name=name, created=now, resource_group=resource_group, location=location, tags=tags or {}
            )
            self.store.insert("experiments", workspace=name, name=DEFAULT_EXPERIMENT, created=now)
            self.store.insert(
                "datastores",
                workspace=name,
                name=DEFAULT_DATASTORE,
                kind="local",
                created=now,
                config={"path": self.layout.local_datastore(name, DEFAULT_DATASTORE)},
            )

    def create_workspace(
        self,
        name: str,
        resource_group: str = DEFAULT_RESOURCE_GROUP,
        location: str = DEFAULT_LOCATION,
        tags: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A workspace, recorded in `resource_group` (workspace names are unique in the service, whatever
        their resource group: the datastores and node sandboxes are named by workspace)."""
        validate_name("workspace", name, "name")
        validate_resource_group(resource_group, "resourceGroup")
        existing = self.store.query_one("SELECT resource_group FROM workspaces WHERE name = ?", name)
        if existing:
            raise Conflict(
                "WorkspaceExists",
                f"workspace '{name}' already exists (in resource group '{existing['resource_group']}')",
            )
        self._ensure_workspace(name, resource_group, location, tags)
        return self.get_workspace(name)

    def set_workspace_tags(self, name: str, tags: dict[str, str]) -> dict[str, Any]:
        self.get_workspace(name)
        self.store.update("workspaces", {"name": name}, tags=tags)
        return self.get_workspace(name)

    def get_workspace(self, name: str) -> dict[str, Any]:
        row = self.store.query_one("SELECT * FROM workspaces WHERE name = ?", name)
        if row is None:
            raise NotFound("workspace", name, "list them with `batchai workspace list`")
        return views.workspace_view(row)

    def usages(self) -> list[dict[str, Any]]:
        """What the service uses, as Batch AI's usages named it: clusters, and the CPUs of their nodes by VM
        priority. The service sets no quota: each limit is 2^31-1 (ARM's field wants a number)."""
        clusters = [
            c for w in self.store.query("SELECT name FROM workspaces") for c in self.store.clusters_of(w["name"])
        ]
        cpus = {"dedicated": 0, "lowpriority": 0}
        for cluster in clusters:
            priority = cluster.spec.vm_priority if cluster.spec.vm_priority in cpus else "dedicated"
            cpus[priority] += sum(n.info.get("cpus") or 0 for n in self.store.nodes_of(cluster.workspace, cluster.name))
        return [
            {"name": name, "currentValue": value, "limit": NO_QUOTA, "unit": "Count"}
            for name, value in (
                ("Clusters", len(clusters)),
                ("Total Cluster Dedicated Regional vCPUs", cpus["dedicated"]),
                ("Total Cluster LowPriority Regional vCPUs", cpus["lowpriority"]),
            )
        ]

    def list_workspaces(self) -> list[dict[str, Any]]:
        return [views.workspace_view(r) for r in self.store.query("SELECT * FROM workspaces ORDER BY name")]

    def delete_workspace(self, name: str) -> None:
        self.get_workspace(name)
        for experiment in self.store.query("SELECT name FROM experiments WHERE workspace = ?", name):
            self.sweeps.forget_experiment(name, experiment["name"])
        for cluster in self.store.clusters_of(name):
            self.engine.delete_cluster(cluster)
        for job in self.store.jobs_of(name):
            self.engine.delete_job(job)
        with self.store.transaction():
            for table in ("experiments", "datastores"):
                self.store.delete(table, workspace=name)
            self.store.delete("workspaces", name=name)

    def create_experiment(self, workspace: str, name: str, document: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A new experiment; `document` may set its own {"mlflowTrackingUri": ...}."""
        self.get_workspace(workspace)
        validate_name("experiment", name, "name")
        tracking = experiment_tracking(document or {})
        if self.store.query_one("SELECT 1 FROM experiments WHERE workspace = ? AND name = ?", workspace, name):
            raise Conflict("ExperimentExists", f"experiment '{name}' already exists in workspace '{workspace}'")
        self.store.insert("experiments", workspace=workspace, name=name, created=time.time(), tracking=tracking)
        return self.get_experiment(workspace, name)

    def update_experiment(self, workspace: str, name: str, document: Mapping[str, Any]) -> dict[str, Any]:
        """Sets or clears ("") the experiment's own MLflow tracking URI; jobs that start after record there."""
        self.get_experiment(workspace, name)
        self.store.update("experiments", {"workspace": workspace, "name": name}, tracking=experiment_tracking(document))
        return self.get_experiment(workspace, name)

    def get_experiment(self, workspace: str, name: str) -> dict[str, Any]:
        row = self.store.query_one("SELECT * FROM experiments WHERE workspace = ? AND name = ?", workspace, name)
        if row is None:
            raise NotFound("experiment", name, f"create it with `batchai experiment create -w {workspace} -n {name}`")
        return views.experiment_view(row, row["job_count"])  # kept by the store, not counted here

    def list_experiments(self, workspace: str) -> list[dict[str, Any]]:
        self.get_workspace(workspace)
        return [
            self.get_experiment(workspace, r["name"])
            for r in self.store.query("SELECT name FROM experiments WHERE workspace = ? ORDER BY name", workspace)
        ]

    def delete_experiment(self, workspace: str, name: str) -> None:
        self.get_experiment(workspace, name)
        self.sweeps.forget_experiment(workspace, name)
        for job in self.store.jobs_of(workspace, name):
            self.engine.delete_job(job)
        self.store.delete("experiments", workspace=workspace, name=name)

    def _datastore_row(self, workspace: str, name: str) -> DatastoreRow:
        row = self.store.datastore_row(workspace, name)
        if row is None:
            raise NotFound("datastore", name, f"list them with `batchai datastore list -w {workspace}`")
        return row

    def list_datastores(self, workspace: str) -> list[dict[str, Any]]:
        self.get_workspace(workspace)
        return [self.datastore_kinds.view(r) for r in self.store.datastores_of(workspace)]

    def get_datastore(self, workspace: str, name: str) -> dict[str, Any]:
        row = self._datastore_row(workspace, name)
        datastore = self.datastore(workspace, name)
        return self.datastore_kinds.view(row, datastore.transfers() if isinstance(datastore, CountsTransfers) else None)

    def create_datastore(self, workspace: str, name: str, document: dict[str, Any]) -> dict[str, Any]:
        """Registers a datastore; "default" may be replaced while the workspace has no jobs yet."""
        self.get_workspace(workspace)
        validate_name("datastore", name, "name")
        kind, config, secrets = self.datastore_kinds.parse_document(document)
        existing = self.store.datastore_row(workspace, name)
        if existing and name != DEFAULT_DATASTORE:
            raise Conflict(
                "DatastoreExists",
                f"datastore '{name}' already exists in workspace '{workspace}'; delete it first or pick another name",
            )
        if existing and self.store.query_one("SELECT 1 FROM jobs WHERE workspace = ?", workspace):
            raise Conflict(
                "DefaultDatastoreInUse",
                f"workspace '{workspace}' already has jobs whose logs and "
                "outputs are in its default datastore; create a new workspace "
                "for this datastore, or register it under another name",
            )
        datastore = self.datastore_kinds.open(kind, {**config, **secrets}, DatastoreContext(self.layout.root))
        if document.get("createContainer") and isinstance(datastore, CreatesContainer):
            datastore.create_container()
        if isinstance(datastore, Checkable):
            datastore.check()  # a wrong key or a missing container is refused now, not at the first job
        if isinstance(datastore, PublicSettings):
            config.update({k: v for k, v in datastore.public_settings().items() if v})
        with self.store.transaction():
            if existing:
                self.store.delete("datastores", workspace=workspace, name=name)
            self.store.insert(
                "datastores",
                workspace=workspace,
                name=name,
                kind=kind,
                config=config,
                secrets=secrets,
                created=time.time(),
            )
        return self.get_datastore(workspace, name)

    def list_datastore_files(self, workspace: str, name: str, path: str = ".") -> list[dict[str, Any]]:
        self._datastore_row(workspace, name)
        return self._list(workspace, "", path, name)

    def read_datastore_file(
        self, workspace: str, name: str, path: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        self._datastore_row(workspace, name)
        relative = clean_relative_path(path, "path")
        if not relative:
            raise BatchAIError("InvalidPath", "path: give the path of a file inside the datastore")
        return self.datastore(workspace, name).read(relative, offset, length)

    # A file server is a shared directory every node sees: a local datastore other than "default"
    # (`batchai file-server create --path` registers one; the ARM face makes one under the home).

    def _is_file_server(self, row: DatastoreRow) -> bool:
        return row.kind == "local" and row.name != DEFAULT_DATASTORE

    def list_file_servers(self, workspace: str) -> list[dict[str, Any]]:
        self.get_workspace(workspace)
        return [self.datastore_kinds.view(r) for r in self.store.datastores_of(workspace) if self._is_file_server(r)]

    def get_file_server(self, workspace: str, name: str) -> dict[str, Any]:
        self.get_workspace(workspace)
        row = self.store.datastore_row(workspace, name)
        if row is None or not self._is_file_server(row):
            raise NotFound("file server", name, f"list them with `batchai file-server list -w {workspace}`")
        return self.datastore_kinds.view(row)

    def create_file_server(self, workspace: str, name: str) -> dict[str, Any]:
        """A new shared directory under the home (a file server made through the API has no path of its own)."""
        self.get_workspace(workspace)
        validate_name("file server", name, "name")
        if name == DEFAULT_DATASTORE:
            raise Conflict("DatastoreExists", f"'{name}' is the workspace's default datastore; pick another name")
        path = self.layout.local_datastore(workspace, name)
        self.create_datastore(workspace, name, {"kind": "local", "path": path})
        os.makedirs(path, exist_ok=True)
        return self.get_file_server(workspace, name)

    def delete_datastore(self, workspace: str, name: str) -> None:
        self._datastore_row(workspace, name)
        if name == DEFAULT_DATASTORE:
            raise BatchAIError(
                "DefaultDatastore",
                f"the workspace's default datastore cannot be deleted; delete workspace '{workspace}' instead",
            )
        self.store.delete("datastores", workspace=workspace, name=name)

    # -- clusters ------------------------------------------------------------------------------

    def list_backends(self) -> list[dict[str, Any]]:
        """Every backend this service knows: those that can create clusters now, and why the others cannot."""
        backends = []
        for name in sorted({*self.backends, *self.unavailable_backends}):
            backend = self.backends.get(name)
            if backend is None:
                why: str | None = f"cannot load here ({self.unavailable_backends[name]})"
            else:
                why = backend.missing_setup() if isinstance(backend, NeedsSiteSetup) else None
            backends.append({"name": name, "available": why is None, **({"reason": why} if why else {})})
        return backends

    def create_cluster(self, workspace: str, document: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        self.get_workspace(workspace)
        spec = parse_cluster_spec(document, name=name, workspace=workspace)
        if spec.backend in self.unavailable_backends:
            raise BatchAIError(
                "BackendUnavailable",
                f"backend: {spec.backend!r} is installed but cannot load here "
                f"({self.unavailable_backends[spec.backend]}); install what it "
                "needs and restart the service",
            )
        if spec.backend not in self.backends:
            raise BatchAIError(
                "UnknownBackend",
                f"backend: {spec.backend!r} is not available here; use one of: {', '.join(sorted(self.backends))}",
            )
        backend = self.backends[spec.backend]
        if isinstance(backend, ChecksClusters):  # the backend's own checks of backendOptions (raises BatchAIError)
            backend.check_cluster(spec)
        if self.store.cluster(workspace, spec.name):
            raise Conflict(
                "ClusterExists",
                f"cluster '{spec.name}' already exists in workspace '{workspace}'; "
                "delete it first or pick another name",
            )
        scale = spec.scale
        target = scale.target if scale.mode == "manual" else max(scale.minimum, scale.initial)
        secrets = spec.setup_task.secrets if spec.setup_task else {}
        self.store.insert(
            "clusters",
            workspace=workspace,
            name=spec.name,
            uuid=uuid.uuid4().hex,
            spec=encode_cluster_spec(spec),
            secrets=dict(secrets),
            target=target,
            created=time.time(),
        )
        self.events.publish("cluster", workspace=workspace, cluster=spec.name, state="created")
        self.engine.wake()
        return self.get_cluster(workspace, spec.name)

    def _cluster_row(self, workspace: str, name: str) -> Cluster:
        row = self.store.cluster(workspace, name)
        if row is None:
            raise NotFound("cluster", name, f"create it with `batchai cluster create -w {workspace} -n {name}`")
        return row

    def get_cluster(self, workspace: str, name: str) -> dict[str, Any]:
        row = self._cluster_row(workspace, name)
        view = views.cluster_view(row, self.store.nodes_of(workspace, name))
        stalled = self.engine.workers.disk_failure(cluster_key(workspace, name))
        if stalled is not None:  # the store is on that disk: only this view can say why nothing moves
            view["errors"] = [*view["errors"], {"code": stalled.code, "message": stalled.message}]
        return view

    def list_clusters(self, workspace: str) -> list[dict[str, Any]]:
        self.get_workspace(workspace)
        return [
            self.get_cluster(workspace, r["name"])
            for r in self.store.query("SELECT name FROM clusters WHERE workspace = ? ORDER BY name", workspace)
        ]

    def update_scale(self, workspace: str, name: str, scale_document: dict[str, Any]) -> dict[str, Any]:
        """PATCH scaleSettings: `{"manual": {...}}` (resize) or `{"autoScale": {...}}` (auto-scale)."""
        row = self._cluster_row(workspace, name)
        if self.handover.owns(row):
            raise BatchAIError(
                "ClusterSizedByScheduler",
                f"cluster '{name}': its nodes are the "
                f"{row.spec.backend} scheduler's, so it is neither "
                "resized nor auto-scaled here; "
                "to cap how many nodes its jobs use at once, create it with "
                "backendOptions.maxNodesInUse (--max-nodes-in-use)",
            )
        current = row.spec
        merged = parse_cluster_spec(
            {"name": name, "backend": current.backend, "scaleSettings": scale_document}, workspace=workspace
        )
        scale = merged.scale
        auto_block = scale_document.get("autoScale")
        if not (isinstance(auto_block, dict) and "idleSecondsBeforeScaledown" in auto_block):
            # The idle timeout is not part of Batch AI's scaleSettings: a resize that does not
            # name one keeps the cluster's own, instead of falling back to the default.
            scale = dataclasses.replace(
                scale, idle_seconds_before_scaledown=current.scale.idle_seconds_before_scaledown
            )
        if scale.mode == "manual":
            target = scale.target
        else:
            live = len([n for n in self.store.nodes_of(workspace, name) if n.state != "leaving"])
            target = min(max(live, scale.minimum), scale.maximum)
        self.store.update(
            "clusters",
            {"workspace": workspace, "name": name},
            spec=encode_cluster_spec(dataclasses.replace(current, scale=scale)),
            target=target,
        )
        self.engine.wake()
        return self.get_cluster(workspace, name)

    def delete_cluster(self, workspace: str, name: str) -> None:
        self.engine.delete_cluster(self._cluster_row(workspace, name))

    def list_nodes(self, workspace: str, name: str) -> list[dict[str, Any]]:
        self._cluster_row(workspace, name)
        return [self._node_view(n) for n in self.store.nodes_of(workspace, name)]

    def _node_view(self, node: Node) -> dict[str, Any]:
        """The node with its load, where its backend samples one (NodeLoad; the backend keeps the samples)."""
        cluster = self.store.cluster(node.workspace, node.cluster)
        backend = self.backends.get(cluster.spec.backend) if cluster else None
        return views.node_view(node, backend.node_load(node) if isinstance(backend, NodeLoad) else None)

    def exec_on_node(
        self, workspace: str, name: str, node_name: str, command: str, timeout: float = 300.0
    ) -> dict[str, Any]:
        """`cluster node exec`: runs a shell command on a node (backends whose nodes can: `exec`)."""
        row = self._cluster_row(workspace, name)
        node = next((n for n in self.store.nodes_of(workspace, name) if n.name == node_name), None)
        if node is None:
            raise NotFound("node", node_name, f"list them with `batchai cluster node list -n {name}`")
        if not isinstance(command, str) or not command.strip():
            raise BatchAIError("InvalidCommand", "command: give the shell command to run on the node")
        backend = self.backends[row.spec.backend]
        if not isinstance(backend, NodeExec):
            raise BatchAIError(
                "NodeExecNotSupported",
                f"the nodes of cluster '{name}' (backend "
                f"{row.spec.backend!r}) do not take commands; "
                "use a cluster of the local or ssh backend",
            )
        code, out, err = backend.exec(node, command, timeout)
        return {"nodeId": node_name, "exitCode": code, "stdout": out, "stderr": err}

    def exec_on_job_node(
        self, workspace: str, experiment: str, name: str, node_name: str, command: str, timeout: float = 300.0
    ) -> dict[str, Any]:
        """`job node exec`: runs a shell command on one of the nodes the job runs on ("" its first)."""
        job = self._job_row(workspace, experiment, name)
        nodes = [n for n in (self.store.node(i) for i in job.node_ids) if n is not None]
        if not nodes:
            raise BatchAIError(
                "JobNotOnNodes", f"job '{name}' is on no node now ({job.state}); run a command once it is running"
            )
        names = [n.name for n in nodes]
        if node_name and node_name not in names:
            raise NotFound("node", node_name, f"job '{name}' runs on {', '.join(names)}")
        return self.exec_on_node(workspace, job.cluster, node_name or names[0], command, timeout)

    def _setup_logs(self, cluster: Cluster) -> tuple[str, str]:
        """(datastore, folder) of the cluster's setup-task logs: where its stdOutErrPathPrefix says when that
        is in one of its mounts, with Batch AI's stdOutErrPathSuffix."""
        setup = cluster.spec.setup_task
        default = cluster_segment(cluster.name, cluster.uuid)
        if setup is None or not setup.std_out_err_path_prefix.strip():
            return DEFAULT_DATASTORE, default
        resource_group = self.get_workspace(cluster.workspace)["resourceGroup"]
        suffix = setup_segment(
            self.settings.subscription_id, resource_group, cluster.workspace, cluster.name, cluster.uuid
        )
        return placement.setup_placement(
            setup.std_out_err_path_prefix,
            suffix,
            lambda path: self.runner.data.mount_place(placement.ClusterMounts(cluster.workspace, cluster.name), path),
            lambda name: self.store.datastore_row(cluster.workspace, name) is not None,
            default,
        )

    def list_cluster_files(self, workspace: str, name: str, path: str = ".") -> list[dict[str, Any]]:
        datastore, folder = self._setup_logs(self._cluster_row(workspace, name))
        return self._list(workspace, folder, path, datastore)

    def read_cluster_file(
        self, workspace: str, name: str, path: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        datastore, folder = self._setup_logs(self._cluster_row(workspace, name))
        return self.datastore(workspace, datastore).read(f"{folder}/{clean_relative_path(path)}", offset, length)

    # -- jobs ----------------------------------------------------------------------------------

    def create_job(
        self,
        workspace: str,
        experiment: str,
        document: dict[str, Any],
        name: str | None = None,
        cluster: str | None = None,
    ) -> dict[str, Any]:
        self.get_experiment(workspace, experiment)
        spec = parse_job_spec(document, name=name, workspace=workspace, experiment=experiment, cluster=cluster)
        self._check_locations(workspace, spec)
        cluster_row = self._cluster_row(workspace, spec.cluster)
        if spec.container is not None and cluster_row.spec.backend not in CONTAINER_BACKENDS:
            where = "containerSettings" if spec.api_version != NATIVE else "image"
            raise BatchAIError(
                "ContainersUnsupported",
                f"{where}: cluster '{spec.cluster}' ({cluster_row.spec.backend} backend) cannot run jobs in images "
                f"yet; use a cluster of the {', '.join(CONTAINER_BACKENDS)} backend, or drop the image",
            )
        scale = cluster_row.spec.scale
        if scale.mode == "auto" and spec.node_count > scale.maximum:
            raise BatchAIError(
                "TooManyNodes",
                f"nodeCount: {spec.node_count} is more than cluster "
                f"'{spec.cluster}' can ever have (maximum {scale.maximum}); "
                "lower nodeCount or raise the cluster's maximum",
            )
        now = time.time()
        job_uuid = str(uuid.uuid4())
        resource_group = self.get_workspace(workspace)["resourceGroup"]
        segment = job_segment(self.settings.subscription_id, resource_group, workspace, experiment, spec.name, job_uuid)
        try:
            with self.store.transaction():  # the queue position is the job's own: no other job comes in between
                job_id = self.store.insert(
                    "jobs",
                    workspace=workspace,
                    experiment=experiment,
                    name=spec.name,
                    uuid=job_uuid,
                    segment=segment,
                    cluster=spec.cluster,
                    priority=spec.priority,
                    state="queued",
                    spec=encode_job_spec(spec),
                    secrets=stored_secrets(spec),
                    created=now,
                    state_since=now,
                )
                job = self.store.existing_job(job_id)
                position = self.store.queued_at_or_above(workspace, spec.cluster, spec.priority)
        except Exception as failure:
            if "UNIQUE" in str(failure):
                raise Conflict(
                    "JobExists",
                    f"job '{spec.name}' already exists in experiment '{experiment}'; delete it or pick another name",
                ) from None
            raise
        self.events.publish("job", workspace=workspace, experiment=experiment, name=spec.name, state="queued")
        self.engine.job_submitted(workspace, spec.cluster)
        return views.job_view(job, position, self._waiting_reason(job))

    def _check_locations(self, workspace: str, spec: JobSpec) -> None:
        """Every datastore:// location of the spec names a datastore of the workspace."""
        prefix = "" if spec.api_version == NATIVE else "properties."
        for index, directory in enumerate(spec.input_directories):
            location = location_of(directory.path)
            if location is not None and not self.store.query_one(
                "SELECT 1 FROM datastores WHERE workspace = ? AND name = ?", workspace, location.datastore
            ):
                raise SpecError(
                    f"{prefix}inputDirectories[{index}].path",
                    directory.path,
                    f"workspace '{workspace}' has no datastore '{location.datastore}'; list them with "
                    f"`batchai datastore list -w {workspace}`",
                    code="DatastoreNotFound",
                )

    def _job_row(self, workspace: str, experiment: str, name: str) -> Job:
        row = self.store.job_by_name(workspace, experiment, name)
        if row is None:
            raise NotFound("job", name, f"list jobs with `batchai job list -w {workspace} -e {experiment}`")
        return row

    def _job_view(self, job: Job) -> dict[str, Any]:
        if job.state == "failed" and not terminated_by_user(job.errors):
            view = views.job_view(job)
            failure = self._failure_summary(job)
            if failure is not None:
                view["failure"] = failure
            return view
        if job.state != "queued":
            return views.job_view(job)
        position = self.store.queued_ahead(job) + 1  # = scheduler.queue_position, without the whole queue
        return views.job_view(job, position, self._waiting_reason(job))

    FAILURES_KEPT = 256

    def _failure_summary(self, job: Job) -> dict[str, Any] | None:
        """The failed job's failure summary (core/failure_summary.py), kept once its stderr line was read
        (a remote node's stderr may arrive after the job ended)."""
        key = (job.uuid, job.attempt)
        if key in self._failures:
            return self._failures[key]
        tasks = [views.task_view(t, self.store.node(t.node_id)) for t in self.store.tasks_of(job.id)]
        summary = failure_summary(tasks, lambda path: self._stdouterr_tail(job, path), job.attempt)
        if summary is not None and summary["line"] is not None:
            if len(self._failures) >= self.FAILURES_KEPT:
                self._failures.pop(next(iter(self._failures)))
            self._failures[key] = summary
        return summary

    def _stdouterr_tail(self, job: Job, path: str) -> str:
        """The last TAIL_BYTES of a file of the job's stdouterr; "" while it is not there or cannot be read
        (the job's view still answers, with a headline without the line; the next view reads again)."""
        datastore_name, folder = placement.placement_of(job, placement.STDOUTERR)
        relative = clean_relative_path(path, "path")
        parent, _, name = relative.rpartition("/")
        try:
            datastore = self.datastore(job.workspace, datastore_name)
            sizes = {e.name: e.size for e in datastore.list("/".join(p for p in (folder, parent) if p))}
            size = sizes.get(name)
            if not size:
                return ""
            data = datastore.read(f"{folder}/{relative}", max(0, size - TAIL_BYTES))
        except (OSError, BatchAIError):
            return ""
        return data.decode("utf-8", errors="replace")

    def _waiting_reason(self, job: Job) -> str:
        cluster = self.store.cluster(job.workspace, job.cluster)
        if self.handover.owns(cluster):  # the scheduler's own reason, or our cap's
            return self.handover.waiting_reason(job)
        need = job.spec.node_count
        if cluster and cluster.spec.scale.mode == "manual" and need > cluster.target:
            return (
                f"needs {need} nodes but cluster '{job.cluster}' has {cluster.target}; "
                f"resize it with `batchai cluster resize -n {job.cluster} -t {need}`"
            )
        return ""

    def get_job(self, workspace: str, experiment: str, name: str) -> dict[str, Any]:
        return self._job_view(self._job_row(workspace, experiment, name))

    def list_jobs(
        self,
        workspace: str,
        experiment: str | None = None,
        state: str | None = None,
        skip: int = 0,
        limit: int | None = None,
    ) -> Page:
        """Up to `limit` (None: all) jobs from the `skip`th on, in creation order, as the list shows them."""
        self.get_workspace(workspace)
        if experiment:
            self.get_experiment(workspace, experiment)
        if state and state not in JOB_STATES:
            raise BatchAIError(
                "InvalidArgument", f"state: {state!r} is not a job state; use one of {', '.join(JOB_STATES)}"
            )
        jobs, more = self.store.job_page(workspace, experiment or None, state or None, skip, limit)
        positions = self.store.queue_positions(jobs)
        return Page([views.job_view(j, positions.get(j.id)) for j in jobs], more)

    def terminate_job(self, workspace: str, experiment: str, name: str) -> dict[str, Any]:
        job = self._job_row(workspace, experiment, name)
        if job.state in ("queued", "running"):
            self.engine.terminate_job(job, "JobTerminated", "the job was terminated by the user")
        return self.get_job(workspace, experiment, name)

    def delete_job(self, workspace: str, experiment: str, name: str, keep_files: bool = False) -> None:
        """Deletes the job and, unless `keep_files`, the folder the service keeps its files in (its
        stdouterr and outputs in the workspace's default datastore; folders it put on a mounted share stay)."""
        job = self._job_row(workspace, experiment, name)
        try:
            self.engine.delete_job(job)
        except Exception as failure:
            if keep_files or storage_failure(failure) is None:
                raise
            # A full disk: the store needs room to record the deletion, which the job's files give back.
            self._delete_job_files(job)
            self.engine.delete_job(job)
        if not keep_files:
            self._delete_job_files(job)

    def _delete_job_files(self, job: Job) -> None:
        datastore = self.datastore(job.workspace)
        if isinstance(datastore, DeletesFiles) and job.segment:
            datastore.delete(job.segment)

    def list_tasks(self, workspace: str, experiment: str, name: str) -> list[dict[str, Any]]:
        job = self._job_row(workspace, experiment, name)
        return [views.task_view(t, self.store.node(t.node_id)) for t in self.store.tasks_of(job.id)]

    def list_job_nodes(self, workspace: str, experiment: str, name: str) -> list[dict[str, Any]]:
        job = self._job_row(workspace, experiment, name)
        return [self._node_view(n) for n in (self.store.node(i) for i in job.node_ids) if n]

    def _job_files_place(self, job: Job, output_id: str) -> tuple[str, str]:
        """(datastore, folder in it) of one of the job's output directories or its stdouterr."""
        ids = [d.id for d in job.spec.output_directories]
        if output_id != placement.STDOUTERR and output_id not in ids:
            allowed = ", ".join(["stdouterr", *ids])
            raise BatchAIError(
                "InvalidOutputDirectoryId",
                f"outputdirectoryid: {output_id!r} is not an output "
                f"directory of job '{job.name}'; use one of: {allowed}",
            )
        return placement.placement_of(job, output_id)

    def _list(
        self,
        workspace: str,
        segment: str,
        path: str,
        datastore_name: str = DEFAULT_DATASTORE,
        link_expiry_minutes: int | None = None,
    ) -> list[dict[str, Any]]:
        if link_expiry_minutes is not None and not 1 <= link_expiry_minutes <= 10080:
            raise BatchAIError(
                "InvalidArgument", f"linkexpiryinminutes: {link_expiry_minutes} is not valid; use 1 to 10080 (a week)"
            )
        relative = clean_relative_path(path)
        full = "/".join(part for part in (segment, relative) if part)
        datastore = self.datastore(workspace, datastore_name)
        entries = [views.file_view(e, relative) for e in datastore.list(full)]
        for entry in entries:  # a link that works without this service (Blob SAS)
            url = (
                datastore.download_url(f"{full}/{entry['name']}".lstrip("/"), link_expiry_minutes)
                if isinstance(datastore, DownloadLinks) and entry["fileType"] == "file"
                else None
            )
            if url:
                entry["downloadUrl"] = url
        return entries

    def list_job_files(
        self,
        workspace: str,
        experiment: str,
        name: str,
        output_id: str = "stdouterr",
        path: str = ".",
        link_expiry_minutes: int | None = None,
    ) -> list[dict[str, Any]]:
        job = self._job_row(workspace, experiment, name)
        datastore, folder = self._job_files_place(job, output_id)
        return self._list(workspace, folder, path, datastore, link_expiry_minutes=link_expiry_minutes)

    def read_job_file(
        self,
        workspace: str,
        experiment: str,
        name: str,
        output_id: str,
        path: str,
        offset: int = 0,
        length: int | None = None,
    ) -> bytes:
        job = self._job_row(workspace, experiment, name)
        datastore, folder = self._job_files_place(job, output_id)
        relative = clean_relative_path(path, "path")
        if not relative:
            raise BatchAIError("InvalidPath", "path: give the name of a file inside the output directory")
        return self.datastore(workspace, datastore).read(f"{folder}/{relative}", offset, length)

    # -- TensorBoard over jobs ------------------------------------------------------------------

    def tensorboard_logdirs(self, workspace: str, experiment: str, job_name: str | None = None) -> dict[str, str]:
        """The directories TensorBoard reads for a job (or every job of an experiment), by run name: the event
        files the service writes from log_metric (`<job>/metrics`) and each output directory, where a job writes
        its own (`<job>/outputs/<ID>`, e.g. $AZ_BATCHAI_OUTPUT_TENSORBOARD). Ended jobs are brought up to date."""
        self.get_experiment(workspace, experiment)
        if job_name:
            jobs = [self._job_row(workspace, experiment, job_name)]
        else:
            jobs = self.store.jobs_of(workspace, experiment)
        self.follower.recheck([job for job in jobs if job.state in ("succeeded", "failed")])
        logdirs = {}
        for job in jobs:
            run = self.follower.tracked_run(job)
            logdirs[f"{job.name}/metrics"] = os.path.join(run.stdouterr_dir, TENSORBOARD_DIR)
            logdirs.update({f"{job.name}/outputs/{output_id}": path for output_id, path in run.output_dirs.items()})
        return logdirs

    # -- a job in one response (the job snapshot) -----------------------------------------------

    SNAPSHOT_MAX_BYTES = 1024 * 1024  # per file and response; a client continues with ranged reads
    SNAPSHOT_TAIL_BYTES = 64 * 1024

    def job_snapshot(
        self,
        workspace: str,
        experiment: str,
        name: str,
        tail_bytes: int = SNAPSHOT_TAIL_BYTES,
        since: dict[str, int] | None = None,
        metrics_file: str | None = None,
    ) -> dict[str, Any]:
        """The job, its tasks, the last `tail_bytes` of each current task's stdout and stderr (or, for a
        file named in `since`, its bytes from that offset) with their offsets, the same for the job's
        `metrics_file` (in stdouterr), and the top of each output directory."""
        if not 0 <= tail_bytes <= self.SNAPSHOT_MAX_BYTES:
            raise BatchAIError(
                "InvalidArgument", f"tailbytes: {tail_bytes} is not valid; use 0 to {self.SNAPSHOT_MAX_BYTES}"
            )
        since = since or {}
        job = self.get_job(workspace, experiment, name)
        tasks = self.list_tasks(workspace, experiment, name)
        sizes = {
            entry["path"]: entry["contentLength"] or 0
            for entry in self.list_job_files(workspace, experiment, name, "stdouterr")
            if entry["fileType"] == "file"
        }

        def part(path: str) -> dict[str, Any] | None:
            if path not in sizes:
                return None  # not written yet
            size = sizes[path]
            start = since[path] if path in since else max(0, size - tail_bytes)
            data = b""
            if start < size:
                data = self.read_job_file(
                    workspace, experiment, name, "stdouterr", path, start, min(size - start, self.SNAPSHOT_MAX_BYTES)
                )
            if path not in since:  # a tail begins at a character, not inside one
                cut = next((i for i, byte in enumerate(data[:4]) if byte & 0xC0 != 0x80), 0)
                start, data = start + cut, data[cut:]
            if job["executionState"] not in ("succeeded", "failed"):  # an ended job's last bytes are all there is
                data = data[: _whole_utf8_length(data)]
            return {
                "path": path,
                "offset": start,
                "nextOffset": start + len(data),
                "size": size,
                "text": data.decode("utf-8", errors="replace"),
            }

        logs = []
        for task in (t for t in tasks if t["attempt"] == job["attempt"]):
            for stream in ("stdout", "stderr"):
                read = part(task[stream])
                if read is not None:
                    logs.append({"task": task["name"], "stream": stream, **read})
        outputs = [d["id"] for d in job["properties"].get("outputDirectories", [])]
        files = {output_id: self.list_job_files(workspace, experiment, name, output_id) for output_id in outputs}
        # Its nodes with their load while it runs (once it ended they may be running other jobs).
        running = job["executionState"] in ("running", "terminating")
        return {
            "job": job,
            "tasks": tasks,
            "nodes": self.list_job_nodes(workspace, experiment, name) if running else [],
            "logs": logs,
            "metrics": part(metrics_file) if metrics_file else None,
            "outputFiles": files,
            "tailBytes": tail_bytes,
        }


def _whole_utf8_length(data: bytes) -> int:
    """How much of `data` ends on a whole UTF-8 character (the rest is read next time)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: look further back for its lead
        if byte & 0x80 == 0:
            return len(data)
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return len(data) if back >= need else len(data) - back
    return len(data)
