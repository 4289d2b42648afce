"""What an Azure cluster is made of, from its spec and the service's settings.

Options come from the service's `BatchAIApp.backend_options["azure"]` (site defaults: a subscription, a
location) merged with the cluster's `backendOptions` (the cluster's own win); the VM size and priority
are the spec's `vmSize` and `vmPriority` (Batch AI's cluster.json; `lowpriority` is Spot). camelCase:

    subscriptionId   the subscription (default: $AZURE_SUBSCRIPTION_ID)
    location         the region (default: $AZURE_LOCATION)
    resourceGroup    the cluster's own resource group (default batchai-<cluster>-<8 of its uuid>)
    adminUserName    the nodes' admin user (Batch AI's userAccountSettings.adminUserName; default azureuser)
    sshPublicKey     a public key also let in (userAccountSettings.adminUserSshPublicKey); the service
                     always makes and keeps a key pair of its own per cluster, never shown
    imageReference   {publisher, offer, sku, version} (virtualMachineConfiguration.imageReference;
                     default Canonical ubuntu-24_04-lts server latest)
    subnet           an existing subnet's id (Batch AI's subnet.id) instead of a VNet of the cluster's own
    publicIp         a public IP per node (default true; false: the service reaches the private addresses)
    sshSource        the address range SSH is allowed from (default "*": key-only logins; give your
                     service's address, e.g. "203.0.113.7/32")
    evictionPolicy   Spot nodes evicted are Delete'd (default) or Deallocate'd
    armEndpoint      Resource Manager's URL (default the public cloud's; sovereign clouds, tests)
    disableInstanceDiscovery  skip Entra ID's authority check (private authorities; default false)
    pollSeconds      how often long operations are polled when Azure does not say (default 15)
    viewSeconds      how often the scale set's instance view is read for node health (default 15;
                     each read is 3 ARM calls, and ARM allows a subscription about 12,000 reads an hour)
    imdsEndpoint     the instance metadata service as the VMs reach it (default http://169.254.169.254;
                     tests): Spot nodes watch its scheduled events for their eviction
    python, root, connectTimeout, outputSyncSeconds   as for the SSH backend, on the nodes
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import BatchAIError

DEFAULT_IMDS = "http://169.254.169.254"
DEFAULT_IMAGE = {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}
_KNOWN = {
    "subscriptionId",
    "location",
    "resourceGroup",
    "adminUserName",
    "sshPublicKey",
    "imageReference",
    "subnet",
    "publicIp",
    "sshSource",
    "evictionPolicy",
    "armEndpoint",
    "disableInstanceDiscovery",
    "pollSeconds",
    "viewSeconds",
    "python",
    "root",
    "connectTimeout",
    "outputSyncSeconds",
    "imdsEndpoint",
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class AzureOptions:
    subscription: str
    location: str
    resource_group: str
    vm_size: str
    spot: bool
    admin_user: str
    ssh_public_key: str | None
    image: Mapping[str, str]
    subnet: str | None
    public_ip: bool
    ssh_source: str
    eviction_policy: str
    arm_endpoint: str | None
    disable_instance_discovery: bool
    poll_seconds: float
    view_seconds: float
    python: str
    root: str
    connect_timeout: float
    output_sync_seconds: float
    tags: Mapping[str, str] = field(default_factory=dict)
    imds_endpoint: str = DEFAULT_IMDS

    @property
    def scale_set(self) -> str:
        return "nodes"


def _fail(name: str, message: str) -> BatchAIError:
    return BatchAIError("InvalidBackendOptions", f"backendOptions.{name}: {message}")


def _text(options: Mapping[str, Any], key: str, default: str | None) -> str | None:
    value = options.get(key, default)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise _fail(key, f"{value!r} is not a name; give a non-empty string")
    return value.strip() if isinstance(value, str) else None


def _number(options: Mapping[str, Any], key: str, default: float, minimum: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise _fail(key, f"{value!r} is not a number of seconds of at least {minimum}")
    return float(value)


def _flag(options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise _fail(key, f"{value!r} is not true or false")
    return value


def parse_options(
    site: Mapping[str, Any] | None, spec: Any, cluster_name: str = "", cluster_uuid: str = ""
) -> AzureOptions:
    """The merged, checked options of one Azure cluster; BatchAIError naming the field when wrong.
    `spec` is the cluster's spec (its vmSize, vmPriority and backendOptions)."""
    options = {**(site or {}), **(spec.backend_options or {})}
    unknown = set(options) - _KNOWN
    if unknown:
        raise _fail(sorted(unknown)[0], f"unknown option; the Azure backend takes {', '.join(sorted(_KNOWN))}")
    subscription = _text(options, "subscriptionId", os.environ.get("AZURE_SUBSCRIPTION_ID"))
    if not subscription:
        raise _fail(
            "subscriptionId", "give the Azure subscription to create the cluster in (or set AZURE_SUBSCRIPTION_ID)"
        )
    location = _text(options, "location", os.environ.get("AZURE_LOCATION"))
    if not location:
        raise _fail("location", "give the Azure region, e.g. eastus (or set AZURE_LOCATION)")
    if not spec.vm_size or spec.vm_size == "local":
        raise BatchAIError("InvalidVmSize", "vmSize: give an Azure VM size, e.g. Standard_NC24ads_A100_v4 (-s)")
    admin = _text(options, "adminUserName", "azureuser") or "azureuser"
    if not _NAME.match(admin):
        raise _fail("adminUserName", f"{admin!r} is not a Linux user name (letters, digits, ., - and _)")
    image = options.get("imageReference", DEFAULT_IMAGE)
    if not isinstance(image, dict) or not (
        image.get("id") or all(isinstance(image.get(k), str) for k in ("publisher", "offer", "sku"))
    ):
        raise _fail("imageReference", "give {publisher, offer, sku[, version]} or {id} of an image")
    eviction = options.get("evictionPolicy", "Delete")
    if eviction not in ("Delete", "Deallocate"):
        raise _fail("evictionPolicy", f"{eviction!r}: use Delete or Deallocate")
    group = _text(options, "resourceGroup", None) or f"batchai-{cluster_name}-{cluster_uuid[:8]}"
    return AzureOptions(
        subscription=subscription,
        location=location,
        resource_group=group,
        vm_size=spec.vm_size,
        spot=spec.vm_priority == "lowpriority",
        admin_user=admin,
        ssh_public_key=_text(options, "sshPublicKey", None),
        image={str(k): str(v) for k, v in image.items()},
        subnet=_text(options, "subnet", None),
        public_ip=_flag(options, "publicIp", True),
        ssh_source=_text(options, "sshSource", "*") or "*",
        eviction_policy=eviction,
        arm_endpoint=_text(options, "armEndpoint", None),
        disable_instance_discovery=_flag(options, "disableInstanceDiscovery", False),
        poll_seconds=_number(options, "pollSeconds", 15.0, 0.0),
        view_seconds=_number(options, "viewSeconds", 15.0, 0.5),
        python=_text(options, "python", "python3") or "python3",
        root=_text(options, "root", "~/.batchai-node") or "~/.batchai-node",
        connect_timeout=_number(options, "connectTimeout", 10.0, 0.5),
        output_sync_seconds=_number(options, "outputSyncSeconds", 10.0, 0.5),
        tags={"created-by": "batchai-jupyter", "cluster": cluster_name, "cluster-uuid": cluster_uuid},
        imds_endpoint=_text(options, "imdsEndpoint", DEFAULT_IMDS) or DEFAULT_IMDS,
    )
