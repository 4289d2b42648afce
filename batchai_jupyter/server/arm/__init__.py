"""An Azure Resource Manager face of the service: Microsoft.BatchAI 2018-05-01, as Microsoft's
azure-mgmt-batchai SDK and Batch AI's REST examples call it (docs/arm-api.md)."""

from __future__ import annotations

from . import ids
from .compute import ClusterHandler, ClusterRemoteLoginHandler, ClustersHandler, FileServerHandler, FileServersHandler
from .jobs import (
    JobHandler,
    JobOutputFilesHandler,
    JobRemoteLoginHandler,
    JobsHandler,
    JobTerminateHandler,
    SignedJobFileHandler,
)
from .links import LINK_PATH
from .provider import (
    ArmNotFoundHandler,
    OperationResultHandler,
    OperationStatusHandler,
    ProviderOperationsHandler,
    UsagesHandler,
)
from .workspaces import (
    ExperimentHandler,
    ExperimentsHandler,
    SubscriptionWorkspacesHandler,
    WorkspaceHandler,
    WorkspacesHandler,
)


def routes() -> list[tuple[str, type]]:
    return [
        (f"/providers/{ids.PROVIDER}/operations", ProviderOperationsHandler),
        (f"{ids.LOCATION}/usages", UsagesHandler),
        (f"{ids.LOCATION}/operationStatuses/{ids.NAME}", OperationStatusHandler),
        (f"{ids.LOCATION}/operationresults/{ids.NAME}", OperationResultHandler),
        (f"{ids.SUBSCRIPTION}/providers/{ids.PROVIDER}/workspaces", SubscriptionWorkspacesHandler),
        (ids.WORKSPACES, WorkspacesHandler),
        (ids.WORKSPACE, WorkspaceHandler),
        (f"{ids.WORKSPACE}/experiments", ExperimentsHandler),
        (ids.EXPERIMENT, ExperimentHandler),
        (f"{ids.EXPERIMENT}/jobs", JobsHandler),
        (ids.JOB, JobHandler),
        (f"{ids.JOB}/terminate", JobTerminateHandler),
        (f"{ids.JOB}/listRemoteLoginInformation", JobRemoteLoginHandler),
        (f"{ids.JOB}/listOutputFiles", JobOutputFilesHandler),
        (f"{ids.WORKSPACE}/fileServers", FileServersHandler),
        (ids.FILE_SERVER, FileServerHandler),
        (f"{ids.WORKSPACE}/clusters", ClustersHandler),
        (ids.CLUSTER, ClusterHandler),
        (f"{ids.CLUSTER}/listRemoteLoginInformation", ClusterRemoteLoginHandler),
        (LINK_PATH, SignedJobFileHandler),
        (r"/subscriptions(?:/.*)?", ArmNotFoundHandler),
        (r"/providers(?:/.*)?", ArmNotFoundHandler),
    ]
