"""The stored form of job and cluster specs: the typed model (models.py) as versioned JSON.

A spec is parsed once, at submit (spec.py, cluster_spec.py), and stored as `{"v": SPEC_VERSION, <field>:
<value>, ...}`: every field of the dataclasses, snake_case, secrets excluded (the store keeps their values
apart). Decoding is strict: a field the model lacks, or one it has that the stored spec lacks, raises
StoredSpecError naming it, so renaming or adding a field cannot silently drop or invent stored data; the
change must bump SPEC_VERSION and add the step in UPGRADES that brings the older form up to it.

Version 0 is what releases before versions wrote (no "v" key; the same fields, with `"secrets": {}`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import BatchAIError
from .models import (
    ClusterSpec,
    ContainerSettings,
    InputDirectory,
    JobSpec,
    OutputDirectory,
    ScaleSettings,
    SetupTask,
    ToolkitSettings,
)

SPEC_VERSION = 3

# Fields a class's stored form leaves out: secret values live in their own column.
_EXCLUDED: dict[type, frozenset[str]] = {
    JobSpec: frozenset({"secrets"}),
    SetupTask: frozenset({"secrets"}),
    ContainerSettings: frozenset({"password"}),
}
# Fields holding another dataclass (or a list of them): decoded into it.
_NESTED: dict[type, dict[str, type]] = {
    JobSpec: {"toolkit": ToolkitSettings, "container": ContainerSettings},
    ClusterSpec: {"scale": ScaleSettings, "setup_task": SetupTask},
}
_NESTED_LISTS: dict[type, dict[str, type]] = {
    JobSpec: {"input_directories": InputDirectory, "output_directories": OutputDirectory}
}

Spec = TypeVar("Spec", JobSpec, ClusterSpec)
Upgrade = Callable[[dict[str, Any]], dict[str, Any]]


class StoredSpecError(BatchAIError):
    """A stored spec this release cannot read: 409 when a newer release wrote it (as the Store's own
    StoreTooNew), else 500 (the store and the model disagree: a bug, or a missing upgrade step)."""

    def __init__(self, message: str, status: int = 500):
        super().__init__("StoredSpecUnreadable", message, status=status)


def encode_job_spec(spec: JobSpec) -> dict[str, Any]:
    return {"v": SPEC_VERSION, **_encode(spec)}


def encode_cluster_spec(spec: ClusterSpec) -> dict[str, Any]:
    return {"v": SPEC_VERSION, **_encode(spec)}


def decode_job_spec(stored: dict[str, Any]) -> JobSpec:
    return _decode_versioned(JobSpec, stored, _JOB_UPGRADES, "job spec")


def decode_cluster_spec(stored: dict[str, Any]) -> ClusterSpec:
    return _decode_versioned(ClusterSpec, stored, _CLUSTER_UPGRADES, "cluster spec")


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        excluded = _EXCLUDED.get(type(value), frozenset())
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in excluded}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    return value


def _decode_versioned(cls: type[Spec], stored: dict[str, Any], upgrades: tuple[Upgrade, ...], what: str) -> Spec:
    data = dict(stored)
    version = data.pop("v", 0)
    if not isinstance(version, int) or version < 0:
        raise StoredSpecError(f"a stored {what} has version {version!r}, which no batchai writes")
    if version > SPEC_VERSION:
        raise StoredSpecError(
            f"a stored {what} has version {version}, written by a newer release (this batchai "
            f"reads versions 0 to {SPEC_VERSION}); upgrade batchai",
            status=409,
        )
    for upgrade in upgrades[version:]:
        data = upgrade(data)
    decoded: Spec = _decode(cls, data, what)
    return decoded


def _decode(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise StoredSpecError(f"stored {path} is {type(data).__name__}, not an object")
    fields = _stored_fields(cls)
    if data.keys() != fields:
        unknown, missing = sorted(data.keys() - fields), sorted(fields - data.keys())
        problems = [f"unknown field {path}.{name}" for name in unknown] + [
            f"missing field {path}.{name}" for name in missing
        ]
        raise StoredSpecError(
            f"stored {path} does not match {cls.__name__} (version {SPEC_VERSION}): "
            f"{'; '.join(problems)}; a changed field needs a new SPEC_VERSION and an upgrade "
            "step in core/spec_codec.py"
        )
    values = dict(data)
    for name, nested in _NESTED.get(cls, {}).items():
        if values[name] is not None:
            values[name] = _decode(nested, values[name], f"{path}.{name}")
    for name, item_cls in _NESTED_LISTS.get(cls, {}).items():
        values[name] = [_decode(item_cls, item, f"{path}.{name}[{index}]") for index, item in enumerate(values[name])]
    return cls(**values)


@functools.cache
def _stored_fields(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls)) - _EXCLUDED.get(cls, frozenset())


# ---- upgrades: step n takes a stored spec from version n to n + 1 --------------------------------


def _job_v0(data: dict[str, Any]) -> dict[str, Any]:
    """Version 0 (releases before versions) stored an empty `secrets`; the values were always apart."""
    data.pop("secrets", None)
    return data


def _cluster_v0(data: dict[str, Any]) -> dict[str, Any]:
    if isinstance(data.get("setup_task"), dict):
        data["setup_task"] = {key: value for key, value in data["setup_task"].items() if key != "secrets"}
    return data


def _job_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 added the run's `params`; older jobs had none."""
    data.setdefault("params", {})
    return data


def _job_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 had no containers: every job ran on the node itself."""
    return {**data, "container": None}


def _unchanged(data: dict[str, Any]) -> dict[str, Any]:
    return data


def _cluster_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 had no containerRuntime: each node's own runtime is used."""
    return {**data, "container_runtime": None}


_JOB_UPGRADES: tuple[Upgrade, ...] = (_job_v0, _job_v1, _job_v2)
_CLUSTER_UPGRADES: tuple[Upgrade, ...] = (_cluster_v0, _unchanged, _cluster_v2)
