"""Where things live under BATCHAI_HOME, and inside a datastore.

    BATCHAI_HOME/
      batchai.db                       the store
      datastores/<workspace>/<name>/   a local datastore's root
        <segment>/stdouterr/           logs (attempt-<n>/ keeps earlier attempts)
        <segment>/outputs/<ID>/        output directories, where <segment> is Batch AI's
                                       jobOutputDirectoryPathSegment (job_segment), fixed at submit
        .clusters/<cluster>/<uuid>/                   node setup-task logs
      shared/<job uuid>/               AZ_BATCHAI_SHARED_JOB_TEMP on the local backend
      nodes/<workspace>/<cluster>/<node>/             a local node's sandbox

Roots are kept short on purpose: deep paths broke OpenMPI's unix sockets for Batch AI users.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass


def default_home() -> str:
    explicit = os.environ.get("BATCHAI_HOME")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    from jupyter_core.paths import jupyter_data_dir

    return os.path.join(jupyter_data_dir(), "batchai")


@dataclass(frozen=True)
class HomeLayout:
    root: str

    @property
    def database(self) -> str:
        return os.path.join(self.root, "batchai.db")

    @property
    def lock_file(self) -> str:
        return os.path.join(self.root, "service.lock")

    def local_datastore(self, workspace: str, name: str) -> str:
        return os.path.join(self.root, "datastores", workspace, name)

    def shared_job_temp(self, job_uuid: str) -> str:
        return os.path.join(self.root, "shared", job_uuid)

    def local_node(self, workspace: str, cluster: str, node: str) -> str:
        return os.path.join(self.root, "nodes", workspace, cluster, node)


def job_segment(
    subscription: str, resource_group: str, workspace: str, experiment: str, job: str, job_uuid: str
) -> str:
    """The datastore-relative folder of one job: Batch AI's jobOutputDirectoryPathSegment,
    `<subscription>/<resource group>/workspaces/<ws>/experiments/<exp>/jobs/<job>/<uuid>`. Jobs submitted
    before this shape keep the `<experiment>/<job>/<uuid>` they were given (the store keeps each job's)."""
    return f"{subscription}/{resource_group}/workspaces/{workspace}/experiments/{experiment}/jobs/{job}/{job_uuid}"


def stdouterr_segment(segment: str) -> str:
    return f"{segment}/stdouterr"


def output_segment(segment: str, output_id: str) -> str:
    return f"{segment}/outputs/{output_id}"


def setup_segment(subscription: str, resource_group: str, workspace: str, cluster: str, cluster_uuid: str) -> str:
    """Batch AI's stdOutErrPathSuffix of a cluster's setup task: where under its stdOutErrPathPrefix the
    setup task's logs go (the cluster's uuid with dashes, as Batch AI wrote it)."""
    try:
        dashed = str(uuid.UUID(cluster_uuid))
    except ValueError:  # not a uuid: kept as it is
        dashed = cluster_uuid
    return f"{subscription}/{resource_group}/workspaces/{workspace}/clusters/{cluster}/{dashed}"


def cluster_segment(cluster: str, cluster_uuid: str) -> str:
    return f".clusters/{cluster}/{cluster_uuid}"
