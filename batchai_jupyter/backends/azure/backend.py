"""The Azure backend: a cluster is a VM Scale Set in the user's subscription; jobs run on its VMs over SSH.

Everything on the nodes (the wrapper, staging, detached tasks, logs, outputs, re-attach, mounts, MPI's
host keys) is the SSH backend's: this class is an SshBackend whose hosts come from the scale set. What
it adds is the scale set's life:

- provision (on the cluster's worker; slow on Azure, so only that cluster waits): the first node checks
  the regional vCPU quota, makes the resource group, network and the scale set at the cluster's target
  capacity; every node then takes a running instance of its own (growing the scale set when none is
  free) and is set up over SSH with the cluster's own key pair. Each long operation's continuation token
  is saved first: a service restarted mid-operation resumes it.
- release deletes that very instance (never "any" instance: Azure's scale-in would pick for us).
- on a Spot node, a watcher of the instance metadata service's scheduled events (runtime/spot_watcher.py)
  writes a notice when the VM is to be preempted; the SSH heartbeat reads it, and node_health makes the
  node unusable at once, so its job is requeued while the VM still runs (Azure gives 30 s or more).
- node_health adds the instance view to the SSH heartbeats: an instance gone (a Spot eviction with
  evictionPolicy Delete), deallocated or failed makes the node unusable, and `node_gone` has the service
  replace it while the cluster is below its target.
- delete_cluster deletes the resource group: everything the cluster had, so nothing is left that costs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import threading
import time
from dataclasses import replace
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.mgmt.compute import models as cm

from ...errors import BatchAIError
from ...ports.compute import (
    BackendContext,
    CloudClusters,
    ClusterRef,
    ClusterSpecRef,
    NeedsSiteSetup,
    NodePlacement,
    NodeRef,
    VanishingNodes,
)
from ...runtime import spot_watcher
from ..ssh import SshBackend, install_program, node_key
from ..ssh_connection import HostConnection, SshError
from ..ssh_options import HostSpec, SshOptions
from . import arm
from .options import AzureOptions, parse_options
from .state import ClusterState, ClusterStates

BOOT_SECONDS = 600.0  # a running VM whose sshd does not answer by then is not a node
WATCHER_SOURCE = open(spot_watcher.__file__, "rb").read()
WATCHER_DIGEST = hashlib.sha256(WATCHER_SOURCE).hexdigest()[:16]
NOTICE = "run/eviction-notice"  # under the node's root: the scheduled Preempt event, once announced


class AzureBackend(SshBackend, CloudClusters, VanishingNodes, NeedsSiteSetup):
    name = "azure"

    def __init__(self, context: BackendContext):
        super().__init__(context)
        self.azure_site = dict(context.options)
        self.site_options = {}  # the SSH side's options are built here, per instance
        self.states = ClusterStates(os.path.join(self.home, "azure", "clusters"))
        self._clients: dict[tuple, arm.Clients] = {}
        self._views: dict[tuple, tuple[float, dict[str, arm.Instance]]] = {}
        self._azure_lock = threading.Lock()

    # -- options and clients ------------------------------------------------------------------------

    def _azure(self, cluster: ClusterRef) -> AzureOptions:
        return parse_options(self.azure_site, cluster.spec, cluster.name, cluster.uuid)

    def clients(self, options: AzureOptions) -> arm.Clients:
        key = (options.subscription, options.arm_endpoint, options.disable_instance_discovery, options.poll_seconds)
        with self._azure_lock:
            if key not in self._clients:
                self._clients[key] = arm.Clients(options)
            return self._clients[key]

    def missing_setup(self) -> str | None:
        if self.azure_site.get("subscriptionId") or os.environ.get("AZURE_SUBSCRIPTION_ID"):
            return None
        return "no Azure subscription configured: set AZURE_SUBSCRIPTION_ID (or backend_options azure.subscriptionId)"

    def check_cluster(self, spec: ClusterSpecRef) -> None:
        """The options, the size offered in the region and the vCPU quota for the most nodes the cluster
        may have: refused (4xx) before anything is created or costs."""
        options = parse_options(self.azure_site, spec)
        try:
            arm.check_quota(self.clients(options), options, spec.max_nodes)
        except AzureError as failure:
            raise arm.arm_error(failure, "checking the size and quota") from None

    # -- long operations ----------------------------------------------------------------------------

    def _run(self, uuid: str, state: ClusterState, kind: str, poller: Any) -> Any:
        """Waits for `poller` with its continuation token saved, so a restart resumes it (`_resume`)."""
        state.operation = {"kind": kind, "token": poller.continuation_token()}
        self.states.save(uuid, state)
        try:
            return poller.result()
        finally:
            state.operation = {}
            self.states.save(uuid, state)

    def _resume(self, uuid: str, state: ClusterState, clients: arm.Clients, options: AzureOptions) -> None:
        """Finishes the operation a stopped service left in flight."""
        if not state.operation:
            return
        kind, token = state.operation["kind"], state.operation["token"]
        sets, group, name = clients.compute.virtual_machine_scale_sets, options.resource_group, options.scale_set
        poller: Any
        if kind == "create":
            poller = sets.begin_create_or_update(group, name, None, continuation_token=token)
        elif kind == "scale":
            poller = sets.begin_update(group, name, None, continuation_token=token)
        elif kind == "delete_instances":
            poller = sets.begin_delete_instances(group, name, None, continuation_token=token)
        elif kind == "delete_scale_set":
            poller = sets.begin_delete(group, name, continuation_token=token)
        else:
            poller = clients.resource.resource_groups.begin_delete(group, continuation_token=token)
        self._run(uuid, state, kind, poller)

    # -- nodes --------------------------------------------------------------------------------------

    def provision(self, cluster: ClusterRef, node: NodeRef) -> NodePlacement:
        options = self._azure(cluster)
        clients = self.clients(options)
        try:
            instance = self._instance_for(cluster, node, options, clients)
        except AzureError as failure:
            self._delete_failed(cluster.uuid, options, clients)
            raise arm.arm_error(failure, f"making the VMs of cluster {cluster.name}") from None
        except BatchAIError:
            self._delete_failed(cluster.uuid, options, clients)
            raise
        private_key, _ = self.states.key_pair(cluster.uuid)
        address = instance.public_ip or instance.private_ip or ""
        host = HostSpec(address, options.admin_user, 22, instance.private_ip or address)
        login = SshOptions(
            hosts=(host,),
            key_file=private_key,
            known_hosts=self.states.known_hosts(cluster.uuid),
            trust_on_first_use=True,  # a new VM's host key is first seen here
            python=options.python,
            root=options.root,
            connect_timeout=options.connect_timeout,
            output_sync_seconds=options.output_sync_seconds,
        )
        self.assignments.take(cluster.uuid, node.name, (host,))
        deadline = time.monotonic() + BOOT_SECONDS
        while True:  # "running" comes before sshd answers on a booting VM
            try:
                placement = self.provision_on(cluster, node, host, login)
                break
            except SshError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(min(5.0, options.connect_timeout))
        notice = (
            self._watch_evictions(node, self.pool.get(host, self._login(login)), placement.root, instance.name, options)
            if options.spot
            else ""
        )
        azure = {
            "instance": instance.instance_id,
            "vm": instance.name,
            "subscription": options.subscription,
            "group": options.resource_group,
            "endpoint": options.arm_endpoint,
            "discovery": options.disable_instance_discovery,
            "poll": options.poll_seconds,
            "view": options.view_seconds,
            "notice": notice,
        }
        return replace(placement, extra={**placement.extra, "azure": azure})

    def _watch_evictions(
        self, node: NodeRef, connection: HostConnection, root: str, vm_name: str, options: AzureOptions
    ) -> str:
        """Starts the VM's watcher of scheduled events (one per node: it exits when another runs) and
        has the heartbeat read its notice; returns the notice file's path."""
        program = install_program(connection, f"{root}/bin/spot-watcher-{WATCHER_DIGEST}.py", WATCHER_SOURCE)
        notice = f"{root}/{NOTICE}"
        command = " ".join(
            shlex.quote(part) for part in (options.python, program, options.imds_endpoint, vm_name, notice)
        )
        connection.check(f"rm -f {shlex.quote(notice)}; setsid nohup {command} </dev/null >/dev/null 2>&1 &")
        self.monitor.watch(node_key(node), connection, notice_file=notice)
        return notice

    def connection(self, node: NodeRef) -> HostConnection:
        connection = super().connection(node)
        notice = (node.info.get("azure") or {}).get("notice")
        if notice:  # a restarted service's heartbeat reads the notice again
            self.monitor.watch(node_key(node), connection, notice_file=notice)
        return connection

    def _instance_for(
        self, cluster: ClusterRef, node: NodeRef, options: AzureOptions, clients: arm.Clients
    ) -> arm.Instance:
        """The running instance that is this node: its own from before a restart, a free one, or a new
        one (the scale set made, or grown)."""
        uuid = cluster.uuid
        state = self.states.load(uuid)
        self._resume(uuid, state, clients, options)
        sets = clients.compute.virtual_machine_scale_sets
        if not state.created:
            arm.check_quota(clients, options, max(cluster.target, 1))
            arm.ensure_group(clients, options)
            state.subnet = arm.ensure_network(clients, options)
            _, public_key = self.states.key_pair(uuid)
            keys = [public_key] + ([options.ssh_public_key] if options.ssh_public_key else [])
            model = arm.scale_set_model(options, state.subnet, keys, max(cluster.target, 1))
            poller = sets.begin_create_or_update(options.resource_group, options.scale_set, model)
            state.created = True
            self._run(uuid, state, "create", poller)
        found = self._views_now(options, clients)
        if node.name in state.nodes and state.nodes[node.name] in found:
            return found[state.nodes[node.name]]
        taken = set(state.nodes.values())
        free = sorted((i for i in found.values() if i.ready and i.instance_id not in taken), key=_by_id)
        if not free:
            wanted = max(cluster.target, len(taken) + 1)
            if wanted <= len(found):
                wanted = len(found) + 1  # the ones there are failed or taken: one more
            arm.check_quota(clients, options, wanted - len(found))
            poller = sets.begin_update(
                options.resource_group,
                options.scale_set,
                cm.VirtualMachineScaleSetUpdate(sku=cm.Sku(name=options.vm_size, tier="Standard", capacity=wanted)),
            )
            self._run(uuid, state, "scale", poller)
            found = self._views_now(options, clients)
            free = sorted((i for i in found.values() if i.ready and i.instance_id not in taken), key=_by_id)
        if not free:
            states = ", ".join(f"{i.name}: {i.provisioning_state}/{i.power_state}" for i in found.values())
            raise BatchAIError("NodeProvisioningFailed", f"no VM of the scale set is running ({states or 'none'})")
        state.nodes[node.name] = free[0].instance_id
        self.states.save(uuid, state)
        return free[0]

    def _views_now(self, options: AzureOptions, clients: arm.Clients) -> dict[str, arm.Instance]:
        found = arm.instances(clients, options)
        with self._azure_lock:
            self._views[(options.subscription, options.resource_group)] = (time.monotonic(), found)
        return found

    def release(self, cluster: ClusterRef, node: NodeRef) -> None:
        super().release(cluster, node)
        state = self.states.load(cluster.uuid)
        instance = state.nodes.pop(node.name, None)
        self._forget_host_key(cluster.uuid, node.ip)
        if instance is None or cluster.deleting:  # the resource group goes with the cluster
            self.states.save(cluster.uuid, state)
            return
        options = self._azure(cluster)
        clients = self.clients(options)
        try:
            self._delete_instances(cluster.uuid, state, options, clients, [instance])
        except ResourceNotFoundError:
            self.states.save(cluster.uuid, state)  # gone already (evicted)
        except AzureError as failure:
            raise arm.arm_error(failure, f"deleting VM {instance} of cluster {cluster.name}") from None

    def _delete_instances(
        self, uuid: str, state: ClusterState, options: AzureOptions, clients: arm.Clients, ids: list[str]
    ) -> None:
        """Deletes these very instances (by id: Azure's scale-in would pick its own)."""
        poller = clients.compute.virtual_machine_scale_sets.begin_delete_instances(
            options.resource_group, options.scale_set, cm.VirtualMachineScaleSetVMInstanceRequiredIDs(instance_ids=ids)
        )
        self._run(uuid, state, "delete_instances", poller)

    def _delete_failed(self, uuid: str, options: AzureOptions, clients: arm.Clients) -> None:
        """After a node could not be made: the scale set's failed VMs that no node holds are deleted
        now, by instance id, rather than kept (and their disks billed) until the cluster is deleted.
        Best effort: the node is unusable either way, and the cluster's deletion takes what is left."""
        state = self.states.load(uuid)
        if not state.created:
            return
        taken = set(state.nodes.values())
        try:
            found = self._views_now(options, clients)
            failed = sorted(
                (
                    i.instance_id
                    for i in found.values()
                    if i.provisioning_state == "Failed" and i.instance_id not in taken
                ),
                key=int,
            )
            if failed:
                self._delete_instances(uuid, state, options, clients, failed)
        except AzureError:
            pass

    def _forget_host_key(self, uuid: str, address: str) -> None:
        """The next VM at this address is another machine, with another host key."""
        path = self.states.known_hosts(uuid)
        try:
            with open(path) as handle:
                lines = handle.readlines()
        except OSError:
            return
        with open(path, "w") as handle:
            handle.writelines(line for line in lines if line.split(" ", 1)[0] not in (address, f"[{address}]:22"))

    def delete_cluster(self, cluster: ClusterRef) -> None:
        """Deletes the cluster's resource group (the scale set, disks, NICs, IPs, network): when this
        returns, nothing of the cluster is left in Azure. A group the user named and we did not make
        keeps everything but the scale set."""
        state = self.states.load(cluster.uuid)
        options = self._azure(cluster)
        clients = self.clients(options)
        try:
            self._resume(cluster.uuid, state, clients, options)
        except AzureError:
            pass  # the deletion ends whatever was in flight
        try:
            owned = arm.owns_group(clients, options, cluster.uuid)
            if owned:
                poller = clients.resource.resource_groups.begin_delete(options.resource_group)
                self._run(cluster.uuid, state, "delete_group", poller)
            elif owned is False and state.created:
                poller = clients.compute.virtual_machine_scale_sets.begin_delete(
                    options.resource_group, options.scale_set
                )
                self._run(cluster.uuid, state, "delete_scale_set", poller)
        except ResourceNotFoundError:
            pass
        except AzureError as failure:
            raise arm.arm_error(failure, f"deleting resource group {options.resource_group}") from None
        self.states.forget(cluster.uuid)

    # -- health from the instance view --------------------------------------------------------------

    def _instance_problem(self, node: NodeRef) -> str | None:
        azure = node.info.get("azure")
        if not azure:
            return None
        key = (azure["subscription"], azure["group"])
        with self._azure_lock:
            when, found = self._views.get(key, (0.0, {}))
        if time.monotonic() - when > azure["view"]:
            options = _options_of(azure)
            try:
                found = self._views_now(options, self.clients(options))
            except AzureError:
                return None  # ARM not answering says nothing about the VM
        instance = found.get(azure["instance"])
        if instance is None:
            return f"VM {azure['vm']} is gone from the scale set (a Spot eviction, or deleted in Azure)"
        if instance.power_state in ("deallocated", "deallocating"):
            return f"VM {azure['vm']} was deallocated (a Spot eviction, or stopped in Azure)"
        if instance.provisioning_state == "Failed":
            return f"VM {azure['vm']} failed (provisioning state Failed)"
        return None

    def _eviction_notice(self, node: NodeRef) -> str | None:
        azure = node.info.get("azure")
        if not azure or "ssh_host" not in node.info:
            return None
        notice = self.monitor.notice(self.connection(node))
        if not notice:
            return None
        try:
            when = json.loads(notice).get("NotBefore") or "soon"
        except (ValueError, AttributeError):
            when = "soon"
        return f"VM {azure['vm']} is being evicted (Azure's scheduled event Preempt, not before {when})"

    def node_health(self, node: NodeRef) -> str | None:
        return self._instance_problem(node) or self._eviction_notice(node) or super().node_health(node)

    def node_gone(self, node: NodeRef) -> bool:
        problem = self._instance_problem(node)
        return problem is not None and "is gone" in problem


def _by_id(instance: arm.Instance) -> int:
    return int(instance.instance_id)


def _options_of(azure: dict) -> AzureOptions:
    """Enough options to list a node's scale set, from what the node keeps (no cluster at hand)."""
    return AzureOptions(
        subscription=azure["subscription"],
        location="",
        resource_group=azure["group"],
        vm_size="",
        spot=False,
        admin_user="",
        ssh_public_key=None,
        image={},
        subnet=None,
        public_ip=True,
        ssh_source="*",
        eviction_policy="Delete",
        arm_endpoint=azure["endpoint"],
        disable_instance_discovery=azure["discovery"],
        poll_seconds=azure["poll"],
        view_seconds=azure["view"],
        python="",
        root="",
        connect_timeout=10.0,
        output_sync_seconds=10.0,
    )
