"""Where a job's stdouterr and output directories go, as Batch AI put them.

A `stdOutErrPathPrefix` or `pathPrefix` that points into a mounted volume ($AZ_BATCHAI_MOUNT_ROOT/<mount>/...
of the cluster, $AZ_BATCHAI_JOB_MOUNT_ROOT/<mount>/... of the job) or names a datastore (datastore://name/...)
puts the folder in that datastore, in Batch AI's layout:

    <prefix>/<jobOutputDirectoryPathSegment>/stdouterr/
    <prefix>/<jobOutputDirectoryPathSegment>/outputs[/<pathSuffix>]

so that the share holds them and a later job mounting it reads them. Any other prefix (the job's temp, a
path of the node) keeps them in the workspace's default datastore, one folder per output id. The service
lists and serves each folder from where it was put (the job's `placements`, recorded when it starts).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import BatchAIError
from ..ports.layout import output_segment, stdouterr_segment
from .locations import location_of
from .models import DEFAULT_DATASTORE
from .records import Job

STDOUTERR = "stdouterr"
MountPlace = Callable[[str], "tuple[str, str] | None"]  # a node path -> (datastore, path inside) it shows


def placements(job: Job, mount_place: MountPlace, has_datastore: Callable[[str], bool]) -> dict[str, list[str]]:
    """{output id and "stdouterr": [datastore, path in it, path on the nodes]} of `job`; the path on the nodes
    is the one under the mount root that Batch AI gave the job ("" for the datastore's own path)."""
    segment = job.segment
    spec = job.spec

    def placed_at(prefix: str, leaf: str) -> list[str] | None:
        return _placed(prefix, mount_place, has_datastore, segment, leaf)

    placed = {STDOUTERR: placed_at(spec.std_out_err_path_prefix, "stdouterr")}
    for directory in spec.output_directories:
        leaf = posixpath.join("outputs", directory.path_suffix.strip("/")).rstrip("/")
        placed[directory.id] = placed_at(directory.path_prefix, leaf)
    return {key: value if value is not None else default_placement(job, key) for key, value in placed.items()}


@dataclass(frozen=True)
class _NoMounts:
    mount_volumes: None = None


@dataclass(frozen=True)
class ClusterMounts:
    """A cluster as storage's mount_place reads a job: its mounts are the cluster's, none of a job's."""

    workspace: str
    cluster: str
    experiment: str = ""
    name: str = ""
    uuid: str = ""
    segment: str = ""
    spec: _NoMounts = _NoMounts()


def setup_placement(
    prefix: str, suffix: str, mount_place: MountPlace, has_datastore: Callable[[str], bool], default: str
) -> tuple[str, str]:
    """(datastore, folder in it) of a cluster's setup-task logs: Batch AI's `<prefix>/<stdOutErrPathSuffix>`
    where the setup task's `stdOutErrPathPrefix` points into a mounted volume of the cluster (or names a
    datastore), else `default` in the default datastore."""
    placed = _placed(prefix, mount_place, has_datastore, suffix, "")
    return (placed[0], placed[1]) if placed is not None else (DEFAULT_DATASTORE, default)


def default_placement(job: Job, output_id: str) -> list[str]:
    """The folder in the default datastore (every job before placements were recorded has its folders there)."""

    if output_id == STDOUTERR:
        return [DEFAULT_DATASTORE, stdouterr_segment(job.segment), ""]
    return [DEFAULT_DATASTORE, output_segment(job.segment, output_id), ""]


def placement_of(job: Job, output_id: str) -> tuple[str, str]:
    """(datastore, folder in it) of one of the job's output directories or its stdouterr."""
    datastore, path = (job.placements.get(output_id) or default_placement(job, output_id))[:2]
    return datastore, path


def node_path_of(job: Job, output_id: str) -> str:
    """Where the job's tasks see the folder under their mount root ("" where it is the datastore's own path)."""
    placed = job.placements.get(output_id) or []
    return placed[2] if len(placed) > 2 else ""


def _placed(
    prefix: str, mount_place: MountPlace, has_datastore: Callable[[str], bool], segment: str, leaf: str
) -> list[str] | None:
    prefix = prefix.strip()
    if not prefix:
        return None
    try:
        location = location_of(prefix)
        if location is not None:
            place = (location.datastore, location.path) if has_datastore(location.datastore) else None
        else:
            place = mount_place(prefix)
    except BatchAIError:
        return None  # a prefix that names nothing usable: the default datastore, as before
    if place is None:
        return None
    datastore, inside = place
    on_nodes = "" if location is not None else "/".join(part for part in (prefix.rstrip("/"), segment, leaf) if part)
    return [datastore, "/".join(part for part in (inside, segment, leaf) if part), on_nodes]
