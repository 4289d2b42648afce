"""A fake Azure Resource Manager for the Azure backend's tests: the one piece that cannot run here.

It speaks ARM's wire protocol, so the unmodified azure-mgmt-* and azure-identity clients talk to it over
HTTPS (a throwaway self-signed certificate the test makes): an Entra ID token endpoint (what
DefaultAzureCredential's environment path and ClientSecretCredential ask), resource groups, NSGs,
VNets and subnets, VM Scale Sets (Uniform: create, get, PATCH capacity, delete, delete instances,
instance views, simulated eviction), the scale set's NIC and public IP lists, compute usages and
resource SKUs, long-running operations (Azure-AsyncOperation and Location), nextLink paging, and ARM's
error bodies (quota exceeded, SKU not available, 429 with Retry-After).

Each scale-set instance is one of `machines`: real sshd hosts in network namespaces. When an instance
is created the fake does what Azure's provisioning agent does: the osProfile's SSH public key goes into
the admin user's authorized_keys on that host; when an instance is deleted or evicted its host is handed
to `on_release` (the test wipes and restarts it: a fresh VM for the next instance).

`FakeImds` is the instance metadata service the VMs ask (plain HTTP, as at 169.254.169.254): its
scheduled events, per asking VM (by its address), where `announce_eviction` puts a Spot VM's Preempt
event ahead of `evict`.
"""

from __future__ import annotations

import base64
import copy
import datetime
import json
import os
import re
import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

RESERVED_ADMIN_NAMES = {"root", "admin", "administrator", "user", "guest", "test", "azureadmin"}
TOKEN = "fake-arm-token-" + uuid.uuid4().hex[:8]

_RG = r"/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)"
_VMSS = _RG + r"/providers/microsoft\.compute/virtualmachinescalesets/(?P<vmss>[^/]+)"
_NET = _RG + r"/providers/microsoft\.network"


def make_self_signed(cert_path: str, key_path: str) -> None:
    """A throwaway certificate for 127.0.0.1 (the test trusts it through REQUESTS_CA_BUNDLE)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-arm.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )


@dataclass
class Machine:
    """A real host an instance runs on: its address and the admin's home as seen from the test."""

    address: str
    home: str
    name: str = ""


@dataclass(frozen=True)
class Size:
    family: str
    cores: int
    memory_gb: float
    gpus: int


SIZE_NAMES = ["Standard_D2s_v5", "Standard_D4s_v5", "Standard_NC6s_v3", "Standard_NC24ads_A100_v4"]
SIZES = {
    "standard_d2s_v5": Size("standardDSv5Family", 2, 8, 0),
    "standard_d4s_v5": Size("standardDSv5Family", 4, 16, 0),
    "standard_nc6s_v3": Size("standardNCSv3Family", 6, 112, 1),
    "standard_nc24ads_a100_v4": Size("StandardNCADSA100v4Family", 24, 220, 1),
}  # by lower-cased name, as ARM matches them


class ArmError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass
class Operation:
    id: str
    finish: Callable[[], None]
    error: dict | None = None
    polls: int = 0
    done: bool = False
    holdable: bool = False  # a scale set's create or resize: `hold` keeps it in progress


@dataclass
class Instance:
    iid: str
    machine: Machine | None
    state: str = "Creating"  # provisioningState
    power: str = "starting"


@dataclass
class ScaleSet:
    rg: str
    name: str
    body: dict  # as PUT, customData and secrets removed
    state: str = "Creating"
    instances: dict[str, Instance] = field(default_factory=dict)
    next_iid: int = 0
    capacities: list[int] = field(default_factory=list)  # every capacity it had, in order

    @property
    def size(self) -> Size:
        return SIZES[self.body["sku"]["name"].lower()]


class FakeArm:
    """State and knobs. `polls_until_done`: status polls an operation answers InProgress to; `hold`
    (an Event, set = go) keeps scale-set creates and resizes, and group deletions, in progress while cleared."""

    def __init__(self, machines: list[Machine], on_release: Callable[[Machine], None], location: str = "eastus"):
        self.lock = threading.RLock()
        self.machines = list(machines)
        self.free = list(machines)
        self.on_release = on_release
        self.location = location
        self.base_url = ""
        self.groups: dict[str, dict] = {}
        self.network: dict[str, dict] = {}  # lower-cased path -> resource
        self.scale_sets: dict[tuple[str, str], ScaleSet] = {}
        self.operations: dict[str, Operation] = {}
        self.polls_until_done = 1
        self.page_size = 2
        self.hold = threading.Event()
        self.hold.set()
        self.quota: dict[str, int] = {"cores": 100, "lowPriorityCores": 100, "standardDSv5Family": 100}
        self.quota.update({"standardNCSv3Family": 24, "StandardNCADSA100v4Family": 0})
        self.unavailable_sizes: set[str] = set()
        self.fail_next_create: dict | None = None
        self.throttle_next = 0
        self.log: list[tuple[str, str]] = []  # (method, path) of every ARM request
        self.bodies: list[tuple[str, str, Any]] = []
        self.auth_headers: set[str] = set()
        self.token_requests: list[dict] = []
        self.throttled = 0
        self.scheduled: dict[str, list[dict]] = {}  # machine address -> its scheduled events
        self.incarnation = 1

    # -- knobs and views for the tests ------------------------------------------------------------

    def calls(self, since: int = 0) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.log[since:])

    def scale_set(self, rg: str, name: str) -> ScaleSet | None:
        with self.lock:
            return self.scale_sets.get((rg.lower(), name.lower()))

    def announce_eviction(self, rg: str, name: str, iid: str) -> None:
        """What Azure does 30 s or more before a Spot eviction: a Preempt event in the VM's scheduled events."""
        with self.lock:
            vmss = self.scale_sets[(rg.lower(), name.lower())]
            machine = vmss.instances[iid].machine
            assert machine is not None
            not_before = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=30)
            self.scheduled.setdefault(machine.address, []).append(
                {
                    "EventId": str(uuid.uuid4()).upper(),
                    "EventStatus": "Scheduled",
                    "EventType": "Preempt",
                    "ResourceType": "VirtualMachine",
                    "Resources": [f"{vmss.name}_{iid}"],
                    "NotBefore": not_before.strftime("%a, %d %b %Y %H:%M:%S GMT"),
                    "Description": "",
                    "EventSource": "Platform",
                    "DurationInSeconds": -1,
                }
            )
            self.incarnation += 1

    def evict(self, rg: str, name: str, iid: str) -> Machine | None:
        """A Spot eviction with evictionPolicy Delete: the instance goes, capacity drops."""
        with self.lock:
            vmss = self.scale_sets[(rg.lower(), name.lower())]
            instance = vmss.instances.pop(iid)
            if instance.machine is not None and self.scheduled.pop(instance.machine.address, None):
                self.incarnation += 1
            vmss.body["sku"]["capacity"] -= 1
            vmss.capacities.append(vmss.body["sku"]["capacity"])
        self._release(instance)
        return instance.machine

    def _release(self, instance: Instance) -> None:
        if instance.machine is not None:
            self.on_release(instance.machine)
            with self.lock:
                self.free.append(instance.machine)

    # -- plumbing ---------------------------------------------------------------------------------

    def start_operation(
        self, finish: Callable[[], None], error: dict | None = None, holdable: bool = False
    ) -> Operation:
        op = Operation(uuid.uuid4().hex, finish, error, holdable=holdable)
        with self.lock:
            self.operations[op.id] = op
        return op

    def poll(self, op_id: str) -> Operation:
        with self.lock:
            op = self.operations.get(op_id)
            if op is None:
                raise ArmError(404, "OperationNotFound", f"operation {op_id} was not found")
            op.polls += 1
            ready = (self.hold.is_set() or not op.holdable) and op.polls > self.polls_until_done
        if ready and not op.done:
            op.done = True
            op.finish()
        return op

    def async_headers(self, op: Operation, sub: str, monitor: bool = False) -> dict:
        base = f"{self.base_url}/subscriptions/{sub}/providers/Microsoft.Compute/locations/{self.location}"
        headers = {"Azure-AsyncOperation": f"{base}/operations/{op.id}?api-version=2024-07-01"}
        if monitor:
            headers["Location"] = f"{base}/operations/{op.id}?monitor=true&api-version=2024-07-01"
        return headers


# -- resources as ARM shows them --------------------------------------------------------------------


def _vmss_id(sub: str, vmss: ScaleSet) -> str:
    return (
        f"/subscriptions/{sub}/resourceGroups/{vmss.rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss.name}"
    )


def _vmss_view(sub: str, vmss: ScaleSet) -> dict:
    view = copy.deepcopy(vmss.body)
    view.update(id=_vmss_id(sub, vmss), name=vmss.name, type="Microsoft.Compute/virtualMachineScaleSets")
    view["properties"]["provisioningState"] = vmss.state
    return view


def _vm_view(sub: str, vmss: ScaleSet, instance: Instance, expand: bool) -> dict:
    os_profile = vmss.body["properties"]["virtualMachineProfile"]["osProfile"]
    properties: dict = {
        "provisioningState": instance.state,
        "osProfile": {
            "computerName": f"{os_profile['computerNamePrefix']}{int(instance.iid):06x}",
            "adminUsername": os_profile["adminUsername"],
        },
    }
    if expand:
        properties["instanceView"] = {
            "statuses": [
                {"code": f"ProvisioningState/{instance.state.lower()}", "level": "Info"},
                {"code": f"PowerState/{instance.power}", "level": "Info"},
            ]
        }
    return {
        "id": f"{_vmss_id(sub, vmss)}/virtualMachines/{instance.iid}",
        "name": f"{vmss.name}_{instance.iid}",
        "instanceId": instance.iid,
        "location": vmss.body["location"],
        "sku": {"name": vmss.body["sku"]["name"], "tier": "Standard"},
        "properties": properties,
    }


def _nic_view(sub: str, vmss: ScaleSet, instance: Instance) -> dict:
    vm_id = f"{_vmss_id(sub, vmss)}/virtualMachines/{instance.iid}"
    nic_id = f"{vm_id}/networkInterfaces/nic"
    ip = {"primary": True, "privateIPAllocationMethod": "Dynamic"}
    if instance.machine is not None:
        ip["privateIPAddress"] = instance.machine.address
    return {
        "id": nic_id,
        "name": "nic",
        "properties": {
            "virtualMachine": {"id": vm_id},
            "ipConfigurations": [{"id": f"{nic_id}/ipConfigurations/ipconfig", "name": "ipconfig", "properties": ip}],
        },
    }


def _pip_view(sub: str, vmss: ScaleSet, instance: Instance) -> dict:
    ip_config = f"{_vmss_id(sub, vmss)}/virtualMachines/{instance.iid}/networkInterfaces/nic/ipConfigurations/ipconfig"
    properties: dict = {"ipConfiguration": {"id": ip_config}, "publicIPAllocationMethod": "Static"}
    if instance.machine is not None:
        properties["ipAddress"] = instance.machine.address
    return {"id": f"{ip_config}/publicIPAddresses/pip", "name": "pip", "properties": properties}


# -- the HTTP side ----------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server_version = "FakeARM/1.0"
    arm: FakeArm

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any = None, headers: dict | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", uuid.uuid4().hex)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        if "x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
            return {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        return json.loads(raw)

    def _dispatch(self, method: str) -> None:
        arm = self.arm
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path.rstrip("/")
        try:
            body = self._body()
            if "/oauth2/" in path or "/.well-known/" in path:
                self._send(200, self._identity(method, path, body))
                return
            with arm.lock:
                arm.log.append((method, path))
                if body is not None:
                    arm.bodies.append((method, path, body))
                arm.auth_headers.add(self.headers.get("Authorization") or "")
                throttled = arm.throttle_next > 0
                if throttled:
                    arm.throttle_next -= 1
                    arm.throttled += 1
            if not (self.headers.get("Authorization") or "").startswith("Bearer "):
                raise ArmError(
                    401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
                )
            if self.headers["Authorization"] != f"Bearer {TOKEN}":
                raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.")
            if throttled:
                raise ArmError(
                    429,
                    "TooManyRequests",
                    "The request is being throttled as the limit has been reached for operation type - Read_30Min.",
                    {"Retry-After": "1"},
                )
            if "api-version" not in query:
                raise ArmError(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
            status, answer, headers = Routes(arm, method, path, query, body).answer()
            self._send(status, answer, headers)
        except ArmError as failure:
            self._send(failure.status, {"error": {"code": failure.code, "message": failure.message}}, failure.headers)

    def _identity(self, method: str, path: str, body: Any) -> dict:
        base = f"{self.arm.base_url}/{path.strip('/').split('/')[0]}"
        if path.endswith("openid-configuration"):
            return {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "issuer": f"{base}/v2.0",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "token"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            }
        with self.arm.lock:
            self.arm.token_requests.append(dict(body or {}))
        return {"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": TOKEN}

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")


class Routes:
    """One request: its route, answered as (status, body, headers)."""

    def __init__(self, arm: FakeArm, method: str, path: str, query: dict, body: Any):
        self.arm, self.method, self.path, self.query, self.body = arm, method, path, query, body

    def answer(self) -> tuple[int, Any, dict]:
        lower = self.path.lower()
        for pattern, handler in (
            (
                r"/subscriptions/(?P<sub>[^/]+)/providers/microsoft\.compute/locations/[^/]+/operations/(?P<op>[^/]+)",
                self.operation,
            ),
            (
                r"/subscriptions/(?P<sub>[^/]+)/providers/microsoft\.compute/locations/(?P<loc>[^/]+)/usages",
                self.usages,
            ),
            (r"/subscriptions/(?P<sub>[^/]+)/providers/microsoft\.compute/skus", self.skus),
            (_RG + r"/operationresults/(?P<op>[^/]+)", self.group_operation),
            (_VMSS + r"/virtualmachines/(?P<iid>\d+)/simulateeviction", self.simulate_eviction),
            (_VMSS + r"/virtualmachines/(?P<iid>\d+)/instanceview", self.instance_view),
            (_VMSS + r"/virtualmachines", self.list_vms),
            (_VMSS + r"/networkinterfaces", self.list_nics),
            (_VMSS + r"/publicipaddresses", self.list_pips),
            (_VMSS + r"/delete", self.delete_instances),
            (_VMSS, self.scale_set),
            (
                _NET
                + r"/(?P<kind>networksecuritygroups|virtualnetworks)/(?P<name>[^/]+)(?:/subnets/(?P<subnet>[^/]+))?",
                self.network,
            ),
            (_RG, self.group),
        ):
            match = re.fullmatch(pattern, lower)
            if match:
                # Names as sent (ARM keeps their case), matched without it.
                names = {k: self.path[match.start(k) : match.end(k)] if v else v for k, v in match.groupdict().items()}
                return handler(**names)
        raise ArmError(404, "InvalidResourceType", f"no route for {self.method} {self.path}")

    # -- paging ------------------------------------------------------------------------------------

    def page(self, items: list) -> tuple[int, Any, dict]:
        start = int(self.query.get("$skiptoken") or 0)
        size = self.arm.page_size
        answer: dict = {"value": items[start : start + size]}
        if start + size < len(items):
            extra = "&".join(f"{k}={v}" for k, v in self.query.items() if k != "$skiptoken")
            answer["nextLink"] = f"{self.arm.base_url}{self.path}?{extra}&$skiptoken={start + size}"
        return 200, answer, {}

    # -- operations ---------------------------------------------------------------------------------

    def operation(self, sub: str, op: str) -> tuple[int, Any, dict]:
        operation = self.arm.poll(op)
        if self.query.get("monitor") == "true":
            return (
                (200, None, {})
                if operation.done
                else (202, None, {"Location": self.arm.base_url + self.path + "?monitor=true&api-version=2024-07-01"})
            )
        status = "InProgress" if not operation.done else ("Failed" if operation.error else "Succeeded")
        answer: dict = {"name": op, "status": status, "startTime": "2026-01-01T00:00:00Z"}
        if operation.done and operation.error:
            answer["error"] = operation.error
        return 200, answer, {}

    def group_operation(self, sub: str, rg: str, op: str) -> tuple[int, Any, dict]:
        operation = self.arm.poll(op)
        if operation.done:
            return 200, None, {}
        return 202, None, {"Location": f"{self.arm.base_url}{self.path}?api-version=2025-04-01", "Retry-After": "0"}

    # -- quota and sizes ----------------------------------------------------------------------------

    def used(self, family: str) -> int:
        with self.arm.lock:
            return sum(
                v.size.cores * len(v.instances)
                for v in self.arm.scale_sets.values()
                if family in ("cores", v.size.family, "lowPriorityCores")
                and (family != "lowPriorityCores") == (self.priority(v.body) != "Spot")
            )

    @staticmethod
    def priority(body: dict) -> str:
        return body["properties"]["virtualMachineProfile"].get("priority") or "Regular"

    def usages(self, sub: str, loc: str) -> tuple[int, Any, dict]:
        items = [
            {
                "unit": "Count",
                "currentValue": self.used(name),
                "limit": limit,
                "name": {"value": name, "localizedValue": name},
            }
            for name, limit in sorted(self.arm.quota.items())
        ]
        return self.page(items)

    def skus(self, sub: str) -> tuple[int, Any, dict]:
        items = []
        for name in SIZE_NAMES:
            key, size = name.lower(), SIZES[name.lower()]
            restrictions = []
            if key in self.arm.unavailable_sizes:
                restrictions.append(
                    {"type": "Location", "values": [self.arm.location], "reasonCode": "NotAvailableForSubscription"}
                )
            capabilities = [("vCPUs", size.cores), ("MemoryGB", size.memory_gb), ("GPUs", size.gpus)]
            items.append(
                {
                    "resourceType": "virtualMachines",
                    "name": name,
                    "tier": "Standard",
                    "family": size.family,
                    "locations": [self.arm.location],
                    "capabilities": [{"name": n, "value": str(v)} for n, v in capabilities],
                    "restrictions": restrictions,
                }
            )
        return self.page(items)

    def check_quota(self, body: dict, extra_instances: int) -> None:
        size = SIZES[body["sku"]["name"].lower()]
        spot = self.priority(body) == "Spot"
        needed = size.cores * extra_instances
        for name in ("lowPriorityCores",) if spot else ("cores", size.family):
            used, limit = self.used(name), self.arm.quota.get(name, 0)
            if used + needed > limit:
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"Operation could not be completed as it results in exceeding approved {name} Cores quota. "
                    f"Additional details - Deployment Model: Resource Manager, Location: {self.arm.location}, "
                    f"Current Limit: {limit}, Current Usage: {used}, Additional Required: {needed}, "
                    f"(Minimum) New Limit Required: {used + needed}. Submit a request for Quota increase at "
                    "https://aka.ms/ProdportalCRP/#blade/Microsoft_Azure_Capacity/UsageAndQuota.ReactView",
                )

    # -- resource groups and network ----------------------------------------------------------------

    def group(self, sub: str, rg: str) -> tuple[int, Any, dict]:
        key = rg.lower()
        groups = self.arm.groups
        if self.method == "PUT":
            created = key not in groups
            groups[key] = {
                "id": f"/subscriptions/{sub}/resourceGroups/{rg}",
                "name": rg,
                "location": self.body["location"],
                "tags": self.body.get("tags") or {},
                "properties": {"provisioningState": "Succeeded"},
            }
            return (201 if created else 200), groups[key], {}
        if key not in groups:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        if self.method in ("GET", "HEAD"):
            return (204 if self.method == "HEAD" else 200), (None if self.method == "HEAD" else groups[key]), {}
        if self.method == "DELETE":
            groups[key]["properties"]["provisioningState"] = "Deleting"

            def finish() -> None:
                with self.arm.lock:
                    gone = [k for k in self.arm.scale_sets if k[0] == key]
                    sets = [self.arm.scale_sets.pop(k) for k in gone]
                    for path in [p for p in self.arm.network if f"/resourcegroups/{key}/" in p]:
                        del self.arm.network[path]
                    self.arm.groups.pop(key, None)
                for vmss in sets:
                    for instance in vmss.instances.values():
                        self.arm._release(instance)

            op = self.arm.start_operation(finish, holdable=True)
            location = f"{self.arm.base_url}/subscriptions/{sub}/resourcegroups/{rg}/operationresults/{op.id}"
            location += "?api-version=2025-04-01"
            return 202, None, {"Location": location, "Retry-After": "0"}
        raise ArmError(405, "MethodNotAllowed", self.method)

    def network(self, sub: str, rg: str, kind: str, name: str, subnet: str | None) -> tuple[int, Any, dict]:
        if rg.lower() not in self.arm.groups:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        key = self.path.lower()
        if self.method == "GET":
            if key not in self.arm.network:
                raise ArmError(404, "ResourceNotFound", f"The Resource '{self.path}' was not found.")
            return 200, self.arm.network[key], {}
        if self.method != "PUT":
            raise ArmError(405, "MethodNotAllowed", self.method)
        resource = copy.deepcopy(self.body)
        resource.update(id=self.path.replace("resourcegroups", "resourceGroups"), name=subnet or name)
        resource.setdefault("properties", {})["provisioningState"] = "Succeeded"
        created = key not in self.arm.network
        self.arm.network[key] = resource
        op = self.arm.start_operation(lambda: None)
        return (201 if created else 200), resource, self.arm.async_headers(op, sub)

    # -- scale sets ----------------------------------------------------------------------------------

    def find(self, rg: str, name: str) -> ScaleSet:
        vmss = self.arm.scale_sets.get((rg.lower(), name.lower()))
        if vmss is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Compute/virtualMachineScaleSets/{name}' under resource group '{rg}' "
                "was not found.",
            )
        return vmss

    def validate(self, body: dict) -> None:
        properties = body.get("properties")
        if not isinstance(properties, dict) or "virtualMachineProfile" not in properties:
            raise ArmError(400, "InvalidParameter", "Required parameter 'virtualMachineProfile' is missing (null).")
        size = (body.get("sku") or {}).get("name", "")
        if size.lower() not in SIZES:
            raise ArmError(400, "InvalidParameter", f"The value {size} provided for the VM size is not valid.")
        if size.lower() in self.arm.unavailable_sizes:
            raise ArmError(
                409,
                "SkuNotAvailable",
                f"The requested VM size for resource 'Following SKUs have failed for Capacity Restrictions: {size}' "
                f"is currently not available in location '{self.arm.location}'. Please try another size or deploy to "
                "a different location or different zone. See https://aka.ms/azureskunotavailable for details.",
            )
        profile = properties["virtualMachineProfile"]
        os_profile = profile.get("osProfile") or {}
        admin = os_profile.get("adminUsername", "")
        if not admin or admin.lower() in RESERVED_ADMIN_NAMES:
            raise ArmError(400, "InvalidParameter", f"The Admin Username specified is not allowed: {admin!r}.")
        if "customData" in os_profile:
            base64.b64decode(os_profile["customData"], validate=True)
        if profile.get("evictionPolicy") and profile.get("priority") != "Spot":
            raise ArmError(400, "InvalidParameter", "EvictionPolicy can be set only for Spot (Low priority) VMs.")
        if not (profile.get("networkProfile") or {}).get("networkInterfaceConfigurations"):
            raise ArmError(400, "InvalidParameter", "networkInterfaceConfigurations is required.")

    def scale_set(self, sub: str, rg: str, vmss: str) -> tuple[int, Any, dict]:
        arm = self.arm
        if self.method == "GET":
            return 200, _vmss_view(sub, self.find(rg, vmss)), {}
        if self.method == "PUT":
            if rg.lower() not in arm.groups:
                raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
            self.validate(self.body)
            existing = arm.scale_sets.get((rg.lower(), vmss.lower()))
            if existing is not None:
                raise ArmError(409, "Conflict", "This fake creates scale sets once; PATCH changes the capacity.")
            self.check_quota(self.body, int(self.body["sku"].get("capacity") or 0))
            body = copy.deepcopy(self.body)
            body["properties"]["virtualMachineProfile"]["osProfile"].pop("customData", None)
            body["properties"]["virtualMachineProfile"]["osProfile"].pop("adminPassword", None)
            scale_set = ScaleSet(rg, vmss, body, capacities=[int(body["sku"].get("capacity") or 0)])
            failure, arm.fail_next_create = arm.fail_next_create, None
            with arm.lock:
                arm.scale_sets[(rg.lower(), vmss.lower())] = scale_set
            added = self.grow(scale_set, int(body["sku"].get("capacity") or 0))
            op = arm.start_operation(lambda: self.settle(scale_set, added, failure), failure, holdable=True)
            return 201, _vmss_view(sub, scale_set), arm.async_headers(op, sub)
        if self.method == "PATCH":
            scale_set = self.find(rg, vmss)
            capacity = int(((self.body or {}).get("sku") or {}).get("capacity", scale_set.body["sku"]["capacity"]))
            current = len(scale_set.instances)
            if capacity > current:
                self.check_quota(scale_set.body, capacity - current)
            scale_set.body["sku"]["capacity"] = capacity
            scale_set.capacities.append(capacity)
            scale_set.state = "Updating"
            added = self.grow(scale_set, capacity - current) if capacity > current else []
            removed = self.shrink(scale_set, current - capacity) if capacity < current else []
            op = arm.start_operation(lambda: self.settle(scale_set, added, None, removed), holdable=True)
            return 200, _vmss_view(sub, scale_set), arm.async_headers(op, sub)
        if self.method == "DELETE":
            scale_set = self.find(rg, vmss)
            scale_set.state = "Deleting"

            def finish() -> None:
                with arm.lock:
                    arm.scale_sets.pop((rg.lower(), vmss.lower()), None)
                for instance in scale_set.instances.values():
                    arm._release(instance)

            op = arm.start_operation(finish)
            return 202, None, arm.async_headers(op, sub, monitor=True)
        raise ArmError(405, "MethodNotAllowed", self.method)

    def grow(self, scale_set: ScaleSet, count: int) -> list[Instance]:
        added = []
        with self.arm.lock:
            for _ in range(count):
                machine = self.arm.free.pop(0) if self.arm.free else None
                instance = Instance(str(scale_set.next_iid), machine)
                scale_set.next_iid += 1
                scale_set.instances[instance.iid] = instance
                added.append(instance)
        return added

    @staticmethod
    def shrink(scale_set: ScaleSet, count: int) -> list[Instance]:
        # The default scale-in policy removes the highest instance ids first.
        ids = sorted(scale_set.instances, key=int)[-count:]
        return [scale_set.instances.pop(i) for i in ids]

    def settle(self, scale_set: ScaleSet, added: list[Instance], failure: dict | None, removed=()) -> None:
        """The operation ends: new instances boot (their admin key installed), removed ones go."""
        for instance in removed:
            self.arm._release(instance)
        for instance in added:
            if failure or instance.machine is None:
                instance.state, instance.power = "Failed", "stopped"
                continue
            os_profile = scale_set.body["properties"]["virtualMachineProfile"]["osProfile"]
            keys = ((os_profile.get("linuxConfiguration") or {}).get("ssh") or {}).get("publicKeys") or []
            ssh_dir = os.path.join(instance.machine.home, ".ssh")
            os.makedirs(ssh_dir, exist_ok=True)
            with open(os.path.join(ssh_dir, "authorized_keys"), "w") as handle:
                handle.writelines(key["keyData"].strip() + "\n" for key in keys)
            instance.state, instance.power = "Succeeded", "running"
        scale_set.state = "Failed" if failure else "Succeeded"

    def delete_instances(self, sub: str, rg: str, vmss: str) -> tuple[int, Any, dict]:
        scale_set = self.find(rg, vmss)
        ids = [str(i) for i in (self.body or {}).get("instanceIds") or []]
        missing = [i for i in ids if i not in scale_set.instances]
        if missing:
            raise ArmError(404, "NotFound", f"The instance ids {missing} were not found in the scale set.")
        removed = [scale_set.instances.pop(i) for i in ids]
        scale_set.body["sku"]["capacity"] -= len(removed)
        scale_set.capacities.append(scale_set.body["sku"]["capacity"])

        def finish() -> None:
            for instance in removed:
                self.arm._release(instance)

        op = self.arm.start_operation(finish)
        return 202, None, self.arm.async_headers(op, sub, monitor=True)

    def list_vms(self, sub: str, rg: str, vmss: str) -> tuple[int, Any, dict]:
        scale_set = self.find(rg, vmss)
        expand = self.query.get("$expand", "").lower() == "instanceview"
        with self.arm.lock:
            instances = sorted(scale_set.instances.values(), key=lambda i: int(i.iid))
        return self.page([_vm_view(sub, scale_set, i, expand) for i in instances])

    def instance_view(self, sub: str, rg: str, vmss: str, iid: str) -> tuple[int, Any, dict]:
        scale_set = self.find(rg, vmss)
        if iid not in scale_set.instances:
            raise ArmError(404, "NotFound", f"The instance {iid} was not found.")
        return 200, _vm_view(sub, scale_set, scale_set.instances[iid], True)["properties"]["instanceView"], {}

    def simulate_eviction(self, sub: str, rg: str, vmss: str, iid: str) -> tuple[int, Any, dict]:
        self.find(rg, vmss)
        threading.Thread(target=self.arm.evict, args=(rg, vmss, iid), daemon=True).start()
        return 204, None, {}

    def list_nics(self, sub: str, rg: str, vmss: str) -> tuple[int, Any, dict]:
        scale_set = self.find(rg, vmss)
        instances = sorted(scale_set.instances.values(), key=lambda i: int(i.iid))
        return self.page([_nic_view(sub, scale_set, i) for i in instances])

    def list_pips(self, sub: str, rg: str, vmss: str) -> tuple[int, Any, dict]:
        scale_set = self.find(rg, vmss)
        instances = sorted(scale_set.instances.values(), key=lambda i: int(i.iid))
        return self.page([_pip_view(sub, scale_set, i) for i in instances if i.machine is not None])


class FakeArmServer:
    """The fake on https://127.0.0.1:<port>, in a thread of the test process."""

    def __init__(self, arm: FakeArm, cert: str, key: str):
        handler = type("BoundHandler", (Handler,), {"arm": arm})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        arm.base_url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.arm = arm
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return self.arm.base_url

    @property
    def authority(self) -> str:
        return self.base_url.split("://", 1)[1]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class ImdsHandler(BaseHTTPRequestHandler):
    arm: FakeArm

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if url.path != "/metadata/scheduledevents":
            status, body = 404, {"error": "Not found"}
        elif self.headers.get("Metadata") != "true":
            status, body = 400, {"error": "Bad request. Required metadata header not specified"}
        elif "api-version" not in parse_qs(url.query):
            status, body = 400, {"error": "Bad request. api-version was not specified in the request"}
        else:
            with self.arm.lock:
                events = copy.deepcopy(self.arm.scheduled.get(self.client_address[0], []))
                status, body = 200, {"DocumentIncarnation": self.arm.incarnation, "Events": events}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeImds:
    """The instance metadata service on http://<address>:<port>, where the VMs (the sshd hosts) reach it."""

    def __init__(self, arm: FakeArm, address: str):
        handler = type("BoundImdsHandler", (ImdsHandler,), {"arm": arm})
        self.httpd = ThreadingHTTPServer((address, 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{address}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
