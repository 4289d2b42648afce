"""The Azure Resource Manager calls of one cluster, through the official SDK clients.

One VM Scale Set (Uniform orchestration) per cluster, in a resource group of its own with its VNet,
subnet and NSG (SSH only, from `sshSource`). Every long operation is a poller whose continuation token
the caller keeps (state.py), so a restarted service resumes it instead of starting it again.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cm
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as nm
from azure.mgmt.resource.resources import ResourceManagementClient

from ...errors import BatchAIError
from .options import AzureOptions

# What cloud-init does on a new node: the Python our wrapper runs with (the images have python3).
CLOUD_INIT = """#cloud-config
package_update: false
runcmd:
  - [sh, -c, "command -v python3 || (apt-get update && apt-get install -y python3)"]
"""


@dataclass(frozen=True)
class Instance:
    """One VM of the scale set, as its instance view and network lists tell."""

    instance_id: str
    name: str
    provisioning_state: str  # Creating | Succeeded | Failed | Deleting ...
    power_state: str  # running | deallocated | stopped | starting | ...
    private_ip: str | None
    public_ip: str | None

    @property
    def ready(self) -> bool:
        return self.provisioning_state == "Succeeded" and self.power_state == "running"


@dataclass(frozen=True)
class SizeFacts:
    family: str
    cores: int
    memory_gb: float
    gpus: int
    restricted: bool


class Clients:
    """The three management clients of one subscription, built once per (subscription, endpoint)."""

    def __init__(self, options: AzureOptions):
        credential = DefaultAzureCredential(disable_instance_discovery=options.disable_instance_discovery)
        kwargs: dict[str, Any] = {"polling_interval": options.poll_seconds}
        if options.arm_endpoint:
            kwargs["base_url"] = options.arm_endpoint
        self.compute = ComputeManagementClient(credential, options.subscription, **kwargs)
        self.network = NetworkManagementClient(credential, options.subscription, **kwargs)
        self.resource = ResourceManagementClient(credential, options.subscription, **kwargs)


def arm_error(failure: AzureError, doing: str) -> BatchAIError:
    """Azure's own code and message, verbatim, with what we were doing (no credentials: how to give them)."""
    error = getattr(failure, "error", None)
    code = getattr(error, "code", None) or type(failure).__name__
    message = getattr(error, "message", None) or str(failure).strip().splitlines()[0]
    status = getattr(failure, "status_code", None)
    if type(failure).__name__ in ("ClientAuthenticationError", "CredentialUnavailableError"):
        message += " (sign in with `az login`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET)"
        status = 401
    return BatchAIError(
        code if code.startswith("Azure") else f"Azure{code}",
        f"{doing}: {code}: {message}",
        status if status in (400, 401, 403, 409) else 502,
    )


# -- sizes and quota ----------------------------------------------------------------------------------


def size_facts(clients: Clients, options: AzureOptions) -> SizeFacts:
    wanted = options.vm_size.lower()
    for sku in clients.compute.resource_skus.list(filter=f"location eq '{options.location}'"):
        if sku.resource_type != "virtualMachines" or (sku.name or "").lower() != wanted:
            continue
        caps = {c.name: c.value for c in sku.capabilities or []}
        restricted = any(
            options.location.lower() in [v.lower() for v in (r.values_property or [])] for r in sku.restrictions or []
        )
        return SizeFacts(
            family=sku.family or "",
            cores=int(float(caps.get("vCPUs") or 1)),
            memory_gb=float(caps.get("MemoryGB") or 0),
            gpus=int(float(caps.get("GPUs") or 0)),
            restricted=restricted,
        )
    raise BatchAIError(
        "VmSizeNotOffered",
        f"vmSize: {options.vm_size} is not offered in {options.location}; "
        f"see `az vm list-skus -l {options.location} -o table` for the sizes there",
    )


def check_quota(clients: Clients, options: AzureOptions, nodes: int) -> SizeFacts:
    """Refuses (409) a cluster whose `nodes` cannot fit in the regional vCPU quota, before anything
    is created: Spot nodes count against the Spot pool, regular ones against their family and the total."""
    facts = size_facts(clients, options)
    if facts.restricted:
        raise BatchAIError(
            "SkuNotAvailable",
            f"vmSize: {options.vm_size} is not available to this subscription in {options.location}; "
            "pick another size or region (`az vm list-skus`)",
            409,
        )
    usages = {u.name.value: u for u in clients.compute.usage.list(options.location) if u.name}
    needed = facts.cores * nodes
    pools = ["lowPriorityCores"] if options.spot else [facts.family, "cores"]
    for pool in pools:
        usage = usages.get(pool)
        if usage is None:
            continue
        if usage.current_value + needed > usage.limit:
            kind = "Spot vCPUs" if options.spot else f"{pool} vCPUs"
            raise BatchAIError(
                "QuotaExceeded",
                f"{nodes} x {options.vm_size} need {needed} {kind} in {options.location}, but "
                f"{usage.current_value} of the limit of {usage.limit} are used ({pool}); ask for more in the "
                "portal (Subscriptions > Usage + quotas) or `az quota update`, or use fewer or smaller nodes",
                409,
            )
    return facts


# -- the cluster's resources --------------------------------------------------------------------------


def ensure_group(clients: Clients, options: AzureOptions) -> None:
    """The cluster's resource group, made and tagged as the cluster's own unless it exists (a group the
    user named in `resourceGroup` is used as it is, and not deleted with the cluster)."""
    try:
        clients.resource.resource_groups.get(options.resource_group)
    except ResourceNotFoundError:
        clients.resource.resource_groups.create_or_update(
            options.resource_group, {"location": options.location, "tags": dict(options.tags)}
        )


def owns_group(clients: Clients, options: AzureOptions, cluster_uuid: str) -> bool | None:
    """Whether the group was made for this cluster (None: there is no such group)."""
    try:
        group = clients.resource.resource_groups.get(options.resource_group)
    except ResourceNotFoundError:
        return None
    return (group.tags or {}).get("cluster-uuid") == cluster_uuid


def ensure_network(clients: Clients, options: AzureOptions) -> str:
    """The subnet the nodes go on (the given one, or a VNet of the cluster's own with an NSG that lets
    SSH in from `sshSource` only); its id."""
    if options.subnet:
        return options.subnet
    group, location = options.resource_group, options.location
    nsg = clients.network.network_security_groups.begin_create_or_update(
        group,
        "nodes-nsg",
        nm.NetworkSecurityGroup(
            location=location,
            security_rules=[
                nm.SecurityRule(
                    name="ssh",
                    priority=1000,
                    direction="Inbound",
                    access="Allow",
                    protocol="Tcp",
                    source_address_prefix=options.ssh_source,
                    source_port_range="*",
                    destination_address_prefix="*",
                    destination_port_range="22",
                )
            ],
        ),
    ).result()
    clients.network.virtual_networks.begin_create_or_update(
        group,
        "nodes-vnet",
        nm.VirtualNetwork(location=location, address_space=nm.AddressSpace(address_prefixes=["10.0.0.0/16"])),
    ).result()
    subnet = clients.network.subnets.begin_create_or_update(
        group,
        "nodes-vnet",
        "nodes",
        nm.Subnet(address_prefix="10.0.0.0/20", network_security_group=nm.NetworkSecurityGroup(id=nsg.id)),
    ).result()
    return str(subnet.id)


def scale_set_model(options: AzureOptions, subnet_id: str, public_keys: Iterable[str], capacity: int) -> Any:
    image = dict(options.image)
    ip_config: dict[str, Any] = {"name": "ipconfig", "primary": True, "subnet": cm.ApiEntityReference(id=subnet_id)}
    if options.public_ip:
        ip_config["public_ip_address_configuration"] = cm.VirtualMachineScaleSetPublicIPAddressConfiguration(
            name="pip", idle_timeout_in_minutes=30, sku=cm.PublicIPAddressSku(name="Standard")
        )
    keys_path = f"/home/{options.admin_user}/.ssh/authorized_keys"
    profile: dict[str, Any] = dict(
        os_profile=cm.VirtualMachineScaleSetOSProfile(
            computer_name_prefix="node",
            admin_username=options.admin_user,
            custom_data=base64.b64encode(CLOUD_INIT.encode()).decode(),
            linux_configuration=cm.LinuxConfiguration(
                disable_password_authentication=True,
                ssh=cm.SshConfiguration(public_keys=[cm.SshPublicKey(path=keys_path, key_data=k) for k in public_keys]),
            ),
        ),
        storage_profile=cm.VirtualMachineScaleSetStorageProfile(
            image_reference=cm.ImageReference(**image),
            os_disk=cm.VirtualMachineScaleSetOSDisk(
                create_option="FromImage",
                disk_size_gb=128,
                managed_disk=cm.VirtualMachineScaleSetManagedDiskParameters(storage_account_type="Premium_LRS"),
            ),
        ),
        network_profile=cm.VirtualMachineScaleSetNetworkProfile(
            network_interface_configurations=[
                cm.VirtualMachineScaleSetNetworkConfiguration(
                    name="nic", primary=True, ip_configurations=[cm.VirtualMachineScaleSetIPConfiguration(**ip_config)]
                )
            ]
        ),
        # Our own scale-in gets a Terminate event before a node goes (the node can checkpoint).
        scheduled_events_profile=cm.ScheduledEventsProfile(
            terminate_notification_profile=cm.TerminateNotificationProfile(enable=True, not_before_timeout="PT5M")
        ),
    )
    if options.spot:
        profile.update(
            priority="Spot", eviction_policy=options.eviction_policy, billing_profile=cm.BillingProfile(max_price=-1)
        )
    return cm.VirtualMachineScaleSet(
        location=options.location,
        tags=dict(options.tags),
        sku=cm.Sku(name=options.vm_size, tier="Standard", capacity=capacity),
        orchestration_mode="Uniform",
        overprovision=False,  # extra VMs would run cloud-init and then vanish
        single_placement_group=True,  # one InfiniBand fabric for multi-node NCCL
        upgrade_policy=cm.UpgradePolicy(mode="Manual"),  # the model never changes under a running job
        virtual_machine_profile=cm.VirtualMachineScaleSetVMProfile(**profile),
    )


def instances(clients: Clients, options: AzureOptions) -> dict[str, Instance]:
    """The scale set's VMs by instance id, with their states and addresses (three paged calls)."""
    group, name = options.resource_group, options.scale_set
    states: dict[str, tuple[str, str, str]] = {}
    for vm in clients.compute.virtual_machine_scale_set_vms.list(group, name, expand="instanceView"):
        power = ""
        for status in (vm.instance_view.statuses if vm.instance_view else None) or []:
            if status.code and status.code.startswith("PowerState/"):
                power = status.code.split("/", 1)[1]
        states[str(vm.instance_id)] = (str(vm.name), str(vm.provisioning_state), power)
    private: dict[str, str] = {}
    for nic in clients.network.network_interfaces.list_virtual_machine_scale_set_network_interfaces(group, name):
        iid = _instance_of(nic.virtual_machine.id if nic.virtual_machine else nic.id)
        primary = next((c for c in nic.ip_configurations or [] if c.primary), None)
        if primary is not None and primary.private_ip_address:
            private[iid] = primary.private_ip_address
    public: dict[str, str] = {}
    if options.public_ip:
        for pip in clients.network.public_ip_addresses.list_virtual_machine_scale_set_public_ip_addresses(group, name):
            if pip.ip_address:
                public[_instance_of(pip.ip_configuration.id if pip.ip_configuration else pip.id)] = pip.ip_address
    return {
        iid: Instance(iid, vm_name, state, power, private.get(iid), public.get(iid))
        for iid, (vm_name, state, power) in states.items()
    }


def _instance_of(resource_id: str) -> str:
    parts = resource_id.split("/")
    lower = [p.lower() for p in parts]
    return parts[lower.index("virtualmachines") + 1]
