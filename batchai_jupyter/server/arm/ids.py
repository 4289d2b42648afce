"""Azure Resource Manager ids and routes of Microsoft.BatchAI 2018-05-01, and how they name our resources.

One service serves one subscription (`Settings.subscription_id`); every workspace records the resource
group it was created in, and answers only there. Experiments, clusters, jobs and file servers are inside
their workspace, so their ids follow from it.
"""

from __future__ import annotations

from ...core import names

API_VERSION = "2018-05-01"
PROVIDER = "Microsoft.BatchAI"
NAME = r"([^/]+)"
SUBSCRIPTION = f"/subscriptions/{NAME}"
RESOURCE_GROUP = f"{SUBSCRIPTION}/resourceGroups/{NAME}"
WORKSPACES = f"{RESOURCE_GROUP}/providers/{PROVIDER}/workspaces"
WORKSPACE = f"{WORKSPACES}/{NAME}"
EXPERIMENT = f"{WORKSPACE}/experiments/{NAME}"
JOB = f"{EXPERIMENT}/jobs/{NAME}"
CLUSTER = f"{WORKSPACE}/clusters/{NAME}"
FILE_SERVER = f"{WORKSPACE}/fileServers/{NAME}"
LOCATION = f"{SUBSCRIPTION}/providers/{PROVIDER}/locations/{NAME}"

RESOURCE_GROUP_NAME = names.RESOURCE_GROUP_NAME  # ARM's rule; Batch AI's for resource names is core/names


def workspace_id(subscription: str, resource_group: str, workspace: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{PROVIDER}/workspaces/{workspace}"


def operation_path(subscription: str, location: str, kind: str, operation: str) -> str:
    """`kind` is operationresults (the Location header) or operationStatuses (Azure-AsyncOperation)."""
    return f"/subscriptions/{subscription}/providers/{PROVIDER}/locations/{location}/{kind}/{operation}"
