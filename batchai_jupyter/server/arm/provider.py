"""The provider's own routes: its operations, usages, the long-running operations' URLs, and ARM's 404."""

from __future__ import annotations

import re

from tornado import web

from ...errors import BatchAIError
from . import envelopes, ids
from .base import ArmHandler
from .ids import PROVIDER
from .operations import CREATE, RETRY_AFTER_SECONDS, Resource, Target, identity, lost_error, operation_view, status_of

PROVIDER_OPERATIONS = [
    (resource, verb, what)
    for resource, plural in (("clusters", "clusters"), ("jobs", "jobs"), ("fileservers", "fileservers"))
    for verb, what in (
        ("read", f"List or get Batch AI {plural}"),
        ("write", f"Create or update Batch AI {plural}"),
        ("delete", f"Delete Batch AI {plural}"),
    )
] + [
    ("workspaces", "read", "List or get Batch AI workspaces"),
    ("workspaces", "write", "Create or update Batch AI workspaces"),
    ("workspaces", "delete", "Delete Batch AI workspaces"),
    ("experiments", "read", "List or get Batch AI experiments"),
    ("experiments", "write", "Create Batch AI experiments"),
    ("experiments", "delete", "Delete Batch AI experiments"),
    ("clusters", "listRemoteLoginInformation", "List Batch AI cluster remote-login information"),
    ("jobs", "terminate/action", "Terminate Batch AI job"),
    ("jobs", "listRemoteLoginInformation", "List Batch AI job remote-login information"),
    ("jobs", "listOutputFiles", "List Batch AI job output files"),
]


class ProviderOperationsHandler(ArmHandler):
    @web.authenticated
    def get(self):
        self.check()
        self.reply_list(
            [
                {
                    "name": f"{PROVIDER}/{resource}/{verb}",
                    "display": {
                        "provider": "Batch AI (batchai-jupyter)",
                        "resource": f"Batch AI {resource}",
                        "operation": what,
                        "description": what,
                    },
                    "origin": "user,system",
                }
                for resource, verb, what in PROVIDER_OPERATIONS
            ]
        )


class UsagesHandler(ArmHandler):
    """What the subscription uses: clusters, and the CPUs of their nodes by VM priority."""

    @web.authenticated
    async def get(self, subscription, location):
        self.check(subscription)
        usages = await self.call(self.service.usages)
        self.reply_list(
            [
                {
                    "unit": usage["unit"],
                    "currentValue": usage["currentValue"],
                    "limit": usage["limit"],
                    "name": {"value": usage["name"], "localizedValue": usage["name"]},
                }
                for usage in usages
            ]
        )


# The resources an operation may act on: (their ids' pattern, the service's getter, the envelope of a view).
_RESOURCES = (
    (ids.JOB, "get_job", envelopes.job),
    (ids.EXPERIMENT, "get_experiment", envelopes.experiment),
    (ids.CLUSTER, "get_cluster", envelopes.cluster),
    (ids.FILE_SERVER, "get_file_server", envelopes.file_server),
)


class OperationHandler(ArmHandler):
    async def operation(self, subscription: str, operation_id: str) -> tuple[Target, Resource | None, str, dict | None]:
        """The operation's target, its resource as it is now, its status and error."""
        self.check(subscription)
        target = Target.of(operation_id)
        found = await self._find(target.resource)
        if found is not None and target.uid and identity(found.view) != target.uid:
            found = None  # another resource of that name: the operation's is gone
        mine, error = self.operations.known(operation_id)
        status = status_of(target, found, mine, error)
        if status == "Failed" and error is None and target.action != CREATE:
            error = lost_error(target)
        elif status == "Failed" and error is None:
            error = {"code": "ProvisioningFailed", "message": f"{target.resource} failed to provision; GET it"}
        return target, found, status, error

    async def _find(self, resource: str) -> Resource | None:
        names = re.fullmatch(ids.WORKSPACE + r"(/.*)?", resource)
        if names is None:
            return None
        subscription, resource_group, workspace = names.group(1, 2, 3)
        try:
            view, base = await self.workspace(subscription, resource_group, workspace)
            for pattern, getter, envelope in _RESOURCES:
                match = re.fullmatch(pattern, resource)
                if match:
                    found = await self.call(getattr(self.service, getter), *match.groups()[2:])
                    return Resource(found, envelope(base, found))
            return Resource(view, envelopes.workspace(self.subscription, view))
        except BatchAIError as missing:
            if missing.status == 404:
                return None
            raise


class OperationStatusHandler(OperationHandler):
    """The Azure-AsyncOperation URL: the operation's status."""

    @web.authenticated
    async def get(self, subscription, location, operation_id):
        target, _, status, error = await self.operation(subscription, operation_id)
        if status == "InProgress":  # when to ask again (the SDK's default, without it, is 30 s)
            self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
        self.reply(operation_view(operation_id, target, status, error))


class OperationResultHandler(OperationHandler):
    """The Location URL: 202 while the operation runs; then a create's resource (200), or 204, or the error."""

    @web.authenticated
    async def get(self, subscription, location, operation_id):
        target, found, status, error = await self.operation(subscription, operation_id)
        if status == "InProgress":
            self.reply_accepted(location, operation_id)
        elif error:
            raise BatchAIError(error["code"], error["message"], 409)
        elif target.action == CREATE and found is not None:
            self.reply(found.envelope)
        else:
            self.set_status(204)
            self.finish()


class ArmNotFoundHandler(ArmHandler):
    """Any other path under /subscriptions or /providers: ARM's 404 in JSON, not Jupyter's HTML page."""

    def _not_found(self) -> None:
        raise BatchAIError(
            "NotFound",
            f"{self.request.method} {self.request.path} is not a Microsoft.BatchAI route of this service",
            404,
        )

    @web.authenticated
    def get(self, *_):
        self._not_found()

    @web.authenticated
    def put(self, *_):
        self._not_found()

    @web.authenticated
    def post(self, *_):
        self._not_found()

    @web.authenticated
    def patch(self, *_):
        self._not_found()

    @web.authenticated
    def delete(self, *_):
        self._not_found()
