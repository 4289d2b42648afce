"""What the Store gives back: typed, frozen records of its rows, specs decoded once (spec_codec.py).

A record is a snapshot: a change goes through the Store, and the caller reads the record again
(`store.job(id)`) or builds the next snapshot with `dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .models import REGISTRY_PASSWORD, ClusterSpec, JobSpec
from .spec_codec import decode_cluster_spec, decode_job_spec

ErrorList = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    workspace: str
    experiment: str
    name: str
    uuid: str
    cluster: str
    priority: int
    state: str
    phase: str
    spec: JobSpec  # secrets excluded: their values are `secrets`
    secrets: dict[str, str]
    attempt: int
    created: float
    state_since: float
    started: float | None
    ended: float | None
    exit_code: int | None
    errors: ErrorList
    node_ids: list[int]
    master_port: int | None
    retries_used: int
    segment: str  # the job's folder in a datastore (Batch AI's jobOutputDirectoryPathSegment)
    placements: dict[str, list[str]]  # output id (and "stdouterr") -> [datastore, path]; {} until started
    interruptions: int  # attempts in a row the service's stopping interrupted

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        return cls(**dict(row, spec=decode_job_spec(row["spec"])))

    def with_secrets(self) -> JobSpec:
        """The spec with its secret values, for what runs the job (never for a view)."""
        variables = {name: value for name, value in self.secrets.items() if name != REGISTRY_PASSWORD}
        container = self.spec.container
        if container is not None:
            container = replace(container, password=self.secrets.get(REGISTRY_PASSWORD, ""))
        return replace(self.spec, secrets=variables, container=container)


@dataclass(frozen=True, slots=True)
class JobBrief:
    """What queueing and scheduling read of a job (Store.job_briefs), without decoding its spec."""

    id: int
    workspace: str
    cluster: str
    priority: int
    state: str
    started: float | None
    node_ids: list[int]
    node_count: int
    max_wall_clock_seconds: float


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    job_id: int
    attempt: int
    phase: str
    name: str
    node_id: int
    role: str
    rank: int
    required: bool
    run_dir: str
    stdout: str
    stderr: str
    state: str
    exit_code: int | None
    launched: float
    ended: float | None
    # Why a task was lost, as the poll that saw it end told (not stored).
    detail: str = field(default="", compare=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Task:
        return cls(**dict(row, required=bool(row["required"])))


@dataclass(frozen=True, slots=True)
class Cluster:
    workspace: str
    name: str
    uuid: str
    spec: ClusterSpec  # setup-task secrets excluded: their values are `secrets`
    secrets: dict[str, str]
    target: int
    created: float
    deleting: bool
    errors: ErrorList

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Cluster:
        return cls(**dict(row, spec=decode_cluster_spec(row["spec"]), deleting=bool(row["deleting"])))


@dataclass(frozen=True, slots=True)
class Node:
    id: int
    workspace: str
    cluster: str
    name: str
    state: str
    ip: str
    job_id: int | None
    state_since: float
    errors: ErrorList
    info: dict[str, Any]  # what its backend placed it with (mpi_host, cpus, gpus, root, ...)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Node:
        return cls(**row)


@dataclass(frozen=True, slots=True)
class DatastoreRow:
    """A registered datastore: its kind and settings; `secrets` are the values its `open` needs besides."""

    workspace: str
    name: str
    kind: str
    config: dict[str, Any]
    secrets: dict[str, str]
    created: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DatastoreRow:
        return cls(**row)
