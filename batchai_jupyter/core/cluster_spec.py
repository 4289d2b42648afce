"""Cluster specs: the native spec and Batch AI's cluster.json, read with the job spec's Fields reader."""

from __future__ import annotations

from typing import Any

from ..errors import SpecError
from .containers import CACHE_LIMIT_KEY, OPTION_KEYS, REGISTRIES_KEY, RUNTIMES
from .durations import parse_duration
from .limits import check_spec_limits
from .models import (
    DEALLOCATION_OPTIONS,
    DEFAULT_WORKSPACE,
    MAX_NODES_PER_CLUSTER,
    ClusterSpec,
    ScaleSettings,
    SetupTask,
)
from .spec import (
    NATIVE,
    Fields,
    command_block,
    mask_secrets,
    named_values,
    one_of,
    raw_block,
    resource_name,
    unwrap,
    variables_to_wire,
)

VM_PRIORITIES = ("dedicated", "lowpriority")
DEFAULT_IDLE_SECONDS = 300.0

# Common Azure sizes Batch AI users picked: "name cores GPUs memory-GiB", `Standard_` left out.
_VM_TABLE = """
A1 1 0 1.75 | A2 2 0 3.5 | A3 4 0 7 | A4 8 0 14
D1 1 0 3.5 | D2 2 0 7 | D3 4 0 14 | D4 8 0 28 | D11 2 0 14 | D12 4 0 28 | D13 8 0 56 | D14 16 0 112
D1_v2 1 0 3.5 | D2_v2 2 0 7 | D3_v2 4 0 14 | D4_v2 8 0 28 | D5_v2 16 0 56
DS1 1 0 3.5 | DS2 2 0 7 | DS3 4 0 14 | DS4 8 0 28 | DS11 2 0 14 | DS12 4 0 28 | DS13 8 0 56
DS1_v2 1 0 3.5 | DS2_v2 2 0 7 | DS3_v2 4 0 14 | DS4_v2 8 0 28 | DS5_v2 16 0 56
D2_v3 2 0 8 | D4_v3 4 0 16 | D8_v3 8 0 32 | D16_v3 16 0 64 | D32_v3 32 0 128 | D64_v3 64 0 256
NC6 6 1 56 | NC12 12 2 112 | NC24 24 4 224 | NC24r 24 4 224
NC6s_v2 6 1 112 | NC12s_v2 12 2 224 | NC24s_v2 24 4 448 | NC24rs_v2 24 4 448
NC6s_v3 6 1 112 | NC12s_v3 12 2 224 | NC24s_v3 24 4 448 | NC24rs_v3 24 4 448
NV6 6 1 56 | NV12 12 2 112 | NV24 24 4 224
ND6s 6 1 112 | ND12s 12 2 224 | ND24s 24 4 448 | ND24rs 24 4 448
D2s_v5 2 0 8 | D4s_v5 4 0 16 | D8s_v5 8 0 32 | D16s_v5 16 0 64 | D32s_v5 32 0 128 | D64s_v5 64 0 256
D2ds_v5 2 0 8 | D4ds_v5 4 0 16 | D8ds_v5 8 0 32 | D16ds_v5 16 0 64 | D32ds_v5 32 0 128 | D64ds_v5 64 0 256
NC4as_T4_v3 4 1 28 | NC8as_T4_v3 8 1 56 | NC16as_T4_v3 16 1 110 | NC64as_T4_v3 64 4 440
NC24ads_A100_v4 24 1 220 | NC48ads_A100_v4 48 2 440 | NC96ads_A100_v4 96 4 880
NC40ads_H100_v5 40 1 320 | NC80adis_H100_v5 80 2 640
ND96asr_v4 96 8 900 | ND96amsr_A100_v4 96 8 1900 | ND96isr_H100_v5 96 8 1900 | ND96isr_H200_v5 96 8 1850
"""
# "standard_nc6" -> (cores, GPUs, memory MiB)
VM_SIZES: dict[str, tuple[int, int, int]] = {
    f"standard_{name.lower()}": (int(cores), int(gpus), int(float(gib) * 1024))
    for row in _VM_TABLE.replace("\n", "|").split("|")
    if row.strip()
    for name, cores, gpus, gib in [row.split()]
}


def vm_size_resources(vm_size: str) -> tuple[int, int, int]:
    """(cores, GPUs, memory MiB) of an Azure size, case-insensitive, `Standard_` optional; else (1, 0, 0)."""
    key = vm_size.strip().lower()
    if not key.startswith("standard_"):
        key = "standard_" + key
    return VM_SIZES.get(key, (1, 0, 0))


def parse_cluster_spec(
    doc: Any, *, name: str | None = None, workspace: str | None = None, backend: str | None = None
) -> ClusterSpec:
    """A ClusterSpec from a native spec or a Batch AI cluster.json; SpecError if invalid.

    userAccountSettings, virtualMachineConfiguration and subnet are accepted and dropped, so no
    password from them is ever kept; on the azure backend the admin's name and public key, the image
    and the subnet become its backendOptions (adminUserName, sshPublicKey, imageReference, subnet).
    """
    check_spec_limits(doc)
    body, outer, api_version = unwrap(doc)
    vm_size = body.text("vmSize", "local", required="an Azure VM size" if api_version != NATIVE else "")
    cores, gpus, memory_mb = vm_size_resources(vm_size)
    backend_name = resource_name("backend", backend, "backend", body, default="local")
    backend_options = raw_block(body, "backendOptions") or {}
    if backend_name == "azure":
        backend_options = {**_azure_settings(body), **backend_options}
    node_setup = body.obj("nodeSetup")
    mounts = one_of((node_setup, "mountVolumes"), (body, "mountVolumes"))
    return ClusterSpec(
        name=resource_name("cluster", name, "name", body, outer),
        workspace=resource_name("workspace", workspace, "workspace", body, outer, DEFAULT_WORKSPACE),
        backend=backend_name,
        vm_size=vm_size,
        vm_priority=body.choice("vmPriority", VM_PRIORITIES, "dedicated"),
        cpus_per_node=body.integer("cpusPerNode", cores, minimum=1),
        gpus_per_node=body.integer("gpusPerNode", gpus, minimum=0),
        memory_mb_per_node=body.integer("memoryMbPerNode", memory_mb, minimum=0),
        scale=_scale(body),
        setup_task=_setup_task(body, node_setup),
        mount_volumes=raw_block(*mounts) if mounts else None,
        native_mounts=body.flag("nativeMounts"),
        backend_options=backend_options,
        api_version=api_version,
        container_runtime=parse_container_runtime(body),
    )


def _azure_settings(body: Fields) -> dict[str, Any]:
    """Batch AI's VM settings the azure backend takes as options (never the admin's password: its
    nodes take SSH keys only)."""
    found: dict[str, Any] = {}
    account = raw_block(body, "userAccountSettings") or {}
    for key, option in (("adminUserName", "adminUserName"), ("adminUserSshPublicKey", "sshPublicKey")):
        if isinstance(account.get(key), str) and account[key].strip():
            found[option] = account[key].strip()
    machine = raw_block(body, "virtualMachineConfiguration") or {}
    if isinstance(machine.get("imageReference"), dict):
        found["imageReference"] = machine["imageReference"]
    subnet = raw_block(body, "subnet") or {}
    if isinstance(subnet.get("id"), str) and subnet["id"].strip():
        found["subnet"] = subnet["id"].strip()
    return found


def parse_container_runtime(body: Fields) -> dict[str, Any] | None:
    """A cluster spec's `containerRuntime` (a Fields of its body): a runtime name, or an object with
    the name and option lists replacing the defaults. None: each node's own runtime, defaults."""
    if not body.has("containerRuntime"):
        return None
    value = body.get("containerRuntime")
    path = body.at("containerRuntime")
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise SpecError(path, value, 'a runtime name (podman, apptainer) or {"name": ..., "runOptions": [...]}')
    unknown = sorted(set(value) - {"name", CACHE_LIMIT_KEY, REGISTRIES_KEY, *OPTION_KEYS})
    if unknown:
        allowed = ", ".join(("name", *OPTION_KEYS, CACHE_LIMIT_KEY, REGISTRIES_KEY))
        raise SpecError(f"{path}.{unknown[0]}", value[unknown[0]], f"one of {allowed}")
    name = value.get("name")
    if name not in RUNTIMES:
        raise SpecError(f"{path}.name", name, "one of " + ", ".join(RUNTIMES))
    runtime: dict[str, Any] = {"name": name}
    if CACHE_LIMIT_KEY in value:
        limit = value[CACHE_LIMIT_KEY]
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise SpecError(f"{path}.{CACHE_LIMIT_KEY}", limit, "the most images a node keeps: an integer >= 1")
        runtime[CACHE_LIMIT_KEY] = limit
    if REGISTRIES_KEY in value:
        conf = value[REGISTRIES_KEY]
        if not isinstance(conf, str) or not conf.startswith("/"):
            raise SpecError(f"{path}.{REGISTRIES_KEY}", conf, "the absolute path of a registries.conf on the nodes")
        runtime[REGISTRIES_KEY] = conf
    for key in OPTION_KEYS:
        if key in value:
            options = value[key]
            if not isinstance(options, list) or not all(isinstance(item, str) for item in options):
                raise SpecError(f"{path}.{key}", options, "a list of command-line options (strings)")
            runtime[key] = list(options)
    return runtime


def _scale(body: Fields) -> ScaleSettings:
    """scaleSettings, or the native shorthands nodeCount (manual) / minNodes+maxNodes (auto)."""
    auto_block = body.present_obj("scaleSettings").obj("autoScale") if body.has("scaleSettings") else None
    idle_place = one_of((body, "idleSecondsBeforeScaledown"), (auto_block, "idleSecondsBeforeScaledown"))
    idle = _idle_seconds(*idle_place) if idle_place else DEFAULT_IDLE_SECONDS
    ways = [key for key in ("scaleSettings", "nodeCount", "minNodes") if body.has(key)]
    if body.has("maxNodes") and "minNodes" not in ways:
        ways.append("maxNodes")
    if len(ways) > 1:
        one_of((body, ways[0]), (body, ways[1]))
    way = ways[0] if ways else None
    if way == "scaleSettings":
        return _scale_settings(body.present_obj("scaleSettings"), idle)
    if way == "nodeCount":
        return ScaleSettings(
            target=body.integer("nodeCount", minimum=0, maximum=MAX_NODES_PER_CLUSTER, required=True),
            idle_seconds_before_scaledown=idle,
        )
    if way is not None:
        return _auto_scale(body, "minNodes", "maxNodes", None, idle)
    return ScaleSettings(idle_seconds_before_scaledown=idle)


def _scale_settings(block: Fields, idle: float) -> ScaleSettings:
    if block.has("manual") and block.has("autoScale"):
        one_of((block, "manual"), (block, "autoScale"))
    if block.has("autoScale"):
        return _auto_scale(
            block.present_obj("autoScale"), "minimumNodeCount", "maximumNodeCount", "initialNodeCount", idle
        )
    if not block.has("manual"):
        raise block.missing("manual", "scaleSettings needs exactly one of manual or autoScale")
    manual = block.present_obj("manual")
    return ScaleSettings(
        mode="manual",
        target=manual.integer("targetNodeCount", 0, minimum=0, maximum=MAX_NODES_PER_CLUSTER),
        node_deallocation_option=manual.choice("nodeDeallocationOption", DEALLOCATION_OPTIONS, "requeue"),
        idle_seconds_before_scaledown=idle,
    )


def _auto_scale(fields: Fields, min_key: str, max_key: str, initial_key: str | None, idle: float) -> ScaleSettings:
    minimum = fields.integer(min_key, 0, minimum=0, maximum=MAX_NODES_PER_CLUSTER)
    maximum = fields.integer(max_key, minimum=max(minimum, 1), maximum=MAX_NODES_PER_CLUSTER, required=True)
    initial = fields.integer(initial_key, 0, minimum=0, maximum=maximum) if initial_key else 0
    return ScaleSettings(
        mode="auto", target=0, minimum=minimum, maximum=maximum, initial=initial, idle_seconds_before_scaledown=idle
    )


def _idle_seconds(fields: Fields, key: str) -> float:
    value = fields.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return 0.0  # scale down as soon as a node is idle
    return parse_duration(value, fields.at(key))


def _setup_task(body: Fields, node_setup: Fields | None) -> SetupTask | None:
    place = one_of((node_setup, "setupTask"), (body, "setupTask"))
    if place is None:
        return None
    task = command_block(*place)
    if isinstance(task, str):
        return SetupTask(command_line=task)
    return SetupTask(
        command_line=task.text("commandLine"),
        environment=named_values(task, "environmentVariables"),
        secrets=named_values(task, "secrets", secret=True),
        std_out_err_path_prefix=task.text("stdOutErrPathPrefix"),
    )


def cluster_spec_to_wire(spec: ClusterSpec) -> dict[str, Any]:
    """The camelCase cluster properties the API returns: no secret values, keys masked."""
    scale = spec.scale
    if scale.mode == "auto":
        scale_settings: dict[str, dict[str, Any]] = {
            "autoScale": {
                "minimumNodeCount": scale.minimum,
                "maximumNodeCount": scale.maximum,
                "initialNodeCount": scale.initial,
            }
        }
    else:
        scale_settings = {
            "manual": {"targetNodeCount": scale.target, "nodeDeallocationOption": scale.node_deallocation_option}
        }
    node_setup = {"setupTask": _setup_task_to_wire(spec.setup_task), "mountVolumes": mask_secrets(spec.mount_volumes)}
    return {
        "name": spec.name,
        "workspace": spec.workspace,
        "backend": spec.backend,
        "vmSize": spec.vm_size,
        "vmPriority": spec.vm_priority,
        "cpusPerNode": spec.cpus_per_node,
        "gpusPerNode": spec.gpus_per_node,
        "memoryMbPerNode": spec.memory_mb_per_node,
        "scaleSettings": scale_settings,
        "idleSecondsBeforeScaledown": scale.idle_seconds_before_scaledown,
        "nodeSetup": node_setup if any(node_setup.values()) else None,
        "nativeMounts": spec.native_mounts,
        "backendOptions": mask_secrets(spec.backend_options),
        **({"containerRuntime": spec.container_runtime} if spec.container_runtime else {}),
    }


def _setup_task_to_wire(task: SetupTask | None) -> dict[str, Any] | None:
    if task is None:
        return None
    return {
        "commandLine": task.command_line,
        "stdOutErrPathPrefix": task.std_out_err_path_prefix,
        "environmentVariables": variables_to_wire(task.environment),
        "secrets": [{"name": name} for name in task.secrets],
    }
