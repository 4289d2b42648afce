"""The provider's own routes: its operations, usages, the long-running operations' URLs, and ARM's 404."""

from __future__ import annotations

from typing import Any

from tornado import web

from ...errors import BatchAIError
from .base import ArmHandler
from .ids import PROVIDER
from .operations import RETRY_AFTER_SECONDS

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


UNLIMITED = 2**31 - 1  # the service sets no quota; ARM's field wants a number


class UsagesHandler(ArmHandler):
    """What the subscription uses: clusters, and the CPUs of their nodes by VM priority."""

    @web.authenticated
    async def get(self, subscription, location):
        self.check(subscription)
        self.reply_list(await self.call(self._usages))

    def _usages(self) -> list[dict[str, Any]]:
        clusters = [c for w in self.service.list_workspaces() for c in self.service.list_clusters(w["name"])]
        cpus = {"dedicated": 0, "lowpriority": 0}
        for cluster in clusters:
            nodes = self.service.list_nodes(cluster["workspace"], cluster["name"])
            priority = cluster["properties"].get("vmPriority") or "dedicated"
            cpus[priority] = cpus.get(priority, 0) + sum(n.get("cpus") or 0 for n in nodes)

        def usage(name: str, value: int) -> dict[str, Any]:
            return {
                "unit": "Count",
                "currentValue": value,
                "limit": UNLIMITED,
                "name": {"value": name, "localizedValue": name},
            }

        return [
            usage("Clusters", len(clusters)),
            usage("Total Cluster Dedicated Regional vCPUs", cpus["dedicated"]),
            usage("Total Cluster LowPriority Regional vCPUs", cpus["lowpriority"]),
        ]


class OperationStatusHandler(ArmHandler):
    """The Azure-AsyncOperation URL: the operation's status."""

    @web.authenticated
    def get(self, subscription, location, operation_id):
        self.check(subscription)
        operation = self.operations.get(operation_id)
        if operation.ended is None:  # when to ask again (the SDK's default, without it, is 30 s)
            self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
        self.reply(operation.view())


class OperationResultHandler(ArmHandler):
    """The Location URL: 202 while the operation runs; then its result (200 or 204), or its error."""

    @web.authenticated
    def get(self, subscription, location, operation_id):
        self.check(subscription)
        operation = self.operations.get(operation_id)
        if operation.ended is None:
            self.reply_accepted(operation)
        elif operation.error:
            raise BatchAIError(operation.error["code"], operation.error["message"], 409)
        else:
            self.set_status(operation.result_status)
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
