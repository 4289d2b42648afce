"""Keeping each cluster's nodes at its target: provisioning (with the node setup task), and
shrinking by the cluster's nodeDeallocationOption."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from ..errors import BatchAIError
from ..ports.compute import ComputeBackend, NodeDirectory, NodeHealth, RemoteNodes, TaskLaunch, VanishingNodes
from ..ports.datastores import Datastore
from . import launch
from .events import EventBus
from .jobrun import JobRunner, error
from .lifecycle import REMOVAL_EFFECTS, JobEvent, KillSetup, NodeEvent, NodeState
from .models import SetupTask
from .records import Cluster, Node
from .store import Store

log = logging.getLogger("batchai")

# Victims of a shrink, cheapest first: nodes doing nothing useful, then idle, then busy ones.
# How many nodes one cycle of a cluster provisions at most; the next cycle follows at once.
PROVISION_BATCH = 16
SHRINK_ORDER = {"unusable": 0, "preparing": 1, "idle": 2, "leaving": 3, "running": 4}


class NodeKeeper:
    def __init__(
        self,
        store: Store,
        events: EventBus,
        runner: JobRunner,
        backend_for: Callable[[str, str], ComputeBackend],
        datastore_for: Callable[..., Datastore],  # (workspace[, name])
        base_env: Callable[[], dict[str, str]],
        setup_logs: Callable[[Cluster], tuple[str, str]],
    ):
        self.store = store
        self.events = events
        self.runner = runner
        self.backend_for = backend_for
        self.datastore_for = datastore_for
        self.base_env = base_env
        self.setup_logs = setup_logs  # cluster -> (datastore, folder) of its setup task's logs

    def reconcile(self, cluster: Cluster) -> bool:
        """Moves the cluster's nodes towards its target; True when nodes are still to be provisioned
        (a cycle provisions a batch at a time, so a huge target never monopolises the cluster's worker)."""
        nodes = self.store.nodes_of(cluster.workspace, cluster.name)
        backend = self.backend_for(cluster.workspace, cluster.name)
        for node in nodes:
            if isinstance(backend, NodeHealth) and node.state in ("idle", "running", "unusable"):
                self._apply_health(cluster, node, backend.node_health(node))
                node = self.store.existing_node(node.id)
            if node.state == "unusable" and isinstance(backend, VanishingNodes) and backend.node_gone(node):
                self.remove(cluster, node)  # its machine is gone for good: another takes its place
            elif node.state == "preparing" and not node.ip and "setup_run_dir" not in node.info:
                # Provisioning runs within one cycle: a node still without a placement was being
                # provisioned when the service stopped. The backend resumes what it had begun.
                self._place(cluster, node)
            elif node.state == "preparing" and "setup_run_dir" not in node.info:
                # Placed, and the service stopped before its mounts or setup task: those go on.
                self._prepare(cluster, node)
            elif node.state == "preparing":
                self._check_setup(cluster, node)
            elif node.state == "leaving" and node.job_id is None:
                self.remove(cluster, node)
        live = [n for n in self.store.nodes_of(cluster.workspace, cluster.name) if n.state != "leaving"]
        if len(live) < cluster.target:
            missing = cluster.target - len(live)
            for _ in range(min(missing, PROVISION_BATCH)):
                self.provision(cluster)
            return missing > PROVISION_BATCH
        elif len(live) > cluster.target:
            victims = sorted(live, key=lambda n: (SHRINK_ORDER[n.state], -n.id))
            for node in victims[: len(live) - cluster.target]:
                self.shrink(cluster, node)
        return False

    # -- growing ---------------------------------------------------------------------------

    def provision(self, cluster: Cluster) -> None:
        now = time.time()
        node_id = self.store.insert(
            "nodes",
            workspace=cluster.workspace,
            cluster=cluster.name,
            name="",
            state="preparing",
            ip="",
            state_since=now,
        )
        self.store.update("nodes", {"id": node_id}, name=f"tvm-{node_id}")
        self._place(cluster, self.store.existing_node(node_id))

    def _place(self, cluster: Cluster, node: Node) -> None:
        """Has the backend provision the node, then shows the cluster's mounts and starts its setup task."""
        node_id, name = node.id, node.name
        backend = self.backend_for(cluster.workspace, cluster.name)
        try:
            placement = backend.provision(cluster, node)
        except Exception as failure:  # the backend's own message says what went wrong
            self.store.set_node_state(
                node_id, NodeEvent.SETUP_FAILED, errors=[error("NodeProvisioningFailed", f"{name}: {failure}")]
            )
            return
        info = {
            "mpi_host": placement.mpi_host,
            "cpus": placement.cpus,
            "gpus": placement.gpus,
            "root": placement.root,
            "port": placement.port,
            **placement.extra,
        }
        self.store.update("nodes", {"id": node_id}, ip=placement.ip, info=info)
        self._prepare(cluster, self.store.existing_node(node_id))

    def _prepare(self, cluster: Cluster, node: Node) -> None:
        """Shows a placed node the cluster's mounts, then starts its setup task (or makes it idle)."""
        node_id, name = node.id, node.name
        backend = self.backend_for(cluster.workspace, cluster.name)
        root = node.info["root"]
        setup = cluster.spec.setup_task
        try:  # the cluster's mountVolumes, under $AZ_BATCHAI_MOUNT_ROOT before the setup task runs
            remote = isinstance(backend, RemoteNodes)
            run = self.runner.node_scripts(backend, [node_id])
            notes = self.runner.data.show_cluster_mounts(
                cluster,
                name,
                os.path.join(root, "mounts"),
                remote=remote,
                show=(
                    (lambda root, mounts: backend.show_mounts(node, root, mounts))
                    if isinstance(backend, RemoteNodes)
                    else None
                ),
                run=run and run(0),
            )
            for note in notes:
                log.info("batchai: cluster %s: %s", cluster.name, note)
        except BatchAIError as failure:
            self.store.set_node_state(
                node_id, NodeEvent.SETUP_FAILED, errors=[error(failure.code, f"{name}: {failure.message}")]
            )
        else:
            if setup:
                self._start_setup(cluster, node, setup)
            else:
                self.store.set_node_state(node_id, NodeEvent.READY)
        self.events.publish(
            "node",
            workspace=cluster.workspace,
            cluster=cluster.name,
            node=name,
            state=self.store.existing_node(node_id).state,
        )

    def setup_log_dir(self, cluster: Cluster) -> str:
        datastore, folder = self.setup_logs(cluster)
        return self.datastore_for(cluster.workspace, datastore).node_path(folder)

    def _start_setup(self, cluster: Cluster, node: Node, setup: SetupTask) -> None:
        logs = self.setup_log_dir(cluster)
        os.makedirs(logs, exist_ok=True)
        root = node.info["root"]
        env = {
            "AZ_BATCHAI_MOUNT_ROOT": os.path.join(root, "mounts"),
            "AZ_BATCHAI_NODE_NAME": node.name,
            "AZ_BATCHAI_NUM_GPUS": str(node.info["gpus"]),
        }
        for values in (setup.environment, cluster.secrets):
            env.update({name: launch.expand_vars(value, env) for name, value in values.items()})
        run_dir = os.path.join(root, "run", "setup")
        info = dict(node.info, setup_run_dir=run_dir, setup_launched=time.time())
        self.store.update("nodes", {"id": node.id}, info=info)
        self.backend_for(cluster.workspace, cluster.name).start_task(
            node,
            run_dir,
            TaskLaunch(
                command=launch.expand_vars(setup.command_line, env),
                env={**self.base_env(), **env},
                cwd=root,
                stdout=os.path.join(logs, f"stdout-setup-{node.name}.txt"),
                stderr=os.path.join(logs, f"stderr-setup-{node.name}.txt"),
                # what its mounts show, for a node that sees the service's files (its sandbox shows only that)
                directories=tuple(
                    NodeDirectory(path, path, "mount") for path in self.runner.data.cluster_mount_sources(cluster)
                ),
            ),
        )

    def _check_setup(self, cluster: Cluster, node: Node) -> None:
        info = node.info
        if "setup_run_dir" not in info:
            return
        status = self.backend_for(cluster.workspace, cluster.name).poll_task(
            node, info["setup_run_dir"], info["setup_launched"]
        )
        if status.state == "running":
            return
        datastore, folder = self.setup_logs(cluster)
        self.runner.data.flush_folder(cluster.workspace, folder, datastore)
        if status.state == "exited" and status.exit_code == 0:
            self.store.set_node_state(node.id, NodeEvent.READY)
        else:
            how = f"exited with code {status.exit_code}" if status.state == "exited" else "was lost"
            self.store.set_node_state(
                node.id,
                NodeEvent.SETUP_FAILED,
                errors=[
                    error(
                        "NodeSetupFailed",
                        f"the setup task on node {node.name} {how}; see "
                        f"stderr-setup-{node.name}.txt in `batchai cluster file list`",
                    )
                ],
            )
        self.events.publish(
            "node",
            workspace=cluster.workspace,
            cluster=cluster.name,
            node=node.name,
            state=self.store.existing_node(node.id).state,
        )

    # -- health (backends whose nodes can fail apart from the service: node_health) -----------

    def _apply_health(self, cluster: Cluster, node: Node, failure: str | None) -> None:
        """A node whose host stopped answering becomes unusable and its job loses this attempt
        (requeued while retries remain); back to idle once the host answers again."""
        if failure and node.state in ("idle", "running"):
            job = self.store.job(node.job_id) if node.job_id is not None else None
            self.store.set_node_state(
                node.id,
                NodeEvent.UNREACHABLE,
                job_id=None,
                errors=[error("NodeUnreachable", f"node {node.name}: {failure}")],
            )
            lost = error("NodeFailed", f"node {node.name} ({node.ip}) failed during the job: {failure}")
            if job is not None and job.state == "running":
                self.runner.attempt_failed(job, lost, None, node_lost=True)
            elif job is not None and job.state == "terminating":
                self.runner.end(job, JobEvent.NODE_LOST, None, [lost])
        elif not failure and node.state == "unusable" and any(e.get("code") == "NodeUnreachable" for e in node.errors):
            self.store.set_node_state(node.id, NodeEvent.REACHABLE, errors=[])
        else:
            return
        self.events.publish(
            "node",
            workspace=cluster.workspace,
            cluster=cluster.name,
            node=node.name,
            state=self.store.existing_node(node.id).state,
        )

    # -- shrinking -------------------------------------------------------------------------

    def shrink(self, cluster: Cluster, node: Node) -> None:
        if node.job_id is None:
            self.remove(cluster, node)
            return
        job = self.store.existing_job(node.job_id)
        option = cluster.spec.scale.node_deallocation_option
        if option == "waitforjobcompletion":
            self.store.set_node_state(node.id, NodeEvent.DRAIN)
            return
        if option == "requeue":
            self.runner.end(
                job,
                JobEvent.RESIZE_REQUEUE,
                None,
                [error("JobRequeued", f"node {node.name} was removed by a cluster resize; the job was requeued")],
            )
        else:
            self.runner.end(
                job,
                JobEvent.RESIZE_TERMINATE,
                None,
                [
                    error(
                        "JobTerminatedByResize",
                        f"node {node.name} was removed by a cluster resize (nodeDeallocationOption terminate)",
                    )
                ],
            )
        self.remove(cluster, self.store.existing_node(node.id))

    def remove(self, cluster: Cluster, node: Node) -> None:
        if "setup_run_dir" in node.info and KillSetup() in REMOVAL_EFFECTS[NodeState(node.state)]:
            self.backend_for(cluster.workspace, cluster.name).kill_task(node, node.info["setup_run_dir"], force=True)
        self.store.delete("nodes", id=node.id)
        self.backend_for(cluster.workspace, cluster.name).release(cluster, node)
        self.events.publish("node", workspace=cluster.workspace, cluster=cluster.name, node=node.name, state="removed")
