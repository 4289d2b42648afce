"""Microsoft.BatchAI 2018-05-01 over the service: one handler per ARM resource path."""

from __future__ import annotations

import time
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from tornado import web

from ...errors import BatchAIError
from ..handlers import FileHandlerMixin
from . import envelopes
from .base import ArmHandler
from .ids import PROVIDER
from .links import LINK_PATH, LinkSigner, load_key
from .operations import RETRY_AFTER_SECONDS

TERMINATE_WAIT_SECONDS = 120.0
MAX_TAGS = 50


def _tags(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_TAGS:
        raise BatchAIError("InvalidTags", f"tags: give an object of at most {MAX_TAGS} names and string values")
    for key, item in value.items():
        if not isinstance(item, str) or not 0 < len(key) <= 512 or len(item) > 256:
            raise BatchAIError("InvalidTags", f"tags.{key}: give a name of 1-512 characters and a value of up to 256")
    return dict(value)


# -- the provider, usages, operations --------------------------------------------------------------

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


# -- workspaces ---------------------------------------------------------------------------------


class SubscriptionWorkspacesHandler(ArmHandler):
    @web.authenticated
    async def get(self, subscription):
        self.check(subscription)
        views = await self.call(self.service.list_workspaces)
        self.reply_list([envelopes.workspace(self.subscription, v) for v in views])


class WorkspacesHandler(ArmHandler):
    @web.authenticated
    async def get(self, subscription, resource_group):
        self.check(subscription, resource_group)
        views = await self.call(self.service.list_workspaces)
        mine = [v for v in views if v["resourceGroup"].lower() == resource_group.lower()]
        self.reply_list([envelopes.workspace(self.subscription, v) for v in mine])


class WorkspaceHandler(ArmHandler):
    @web.authenticated
    async def get(self, subscription, resource_group, name):
        view, _ = await self.workspace(subscription, resource_group, name)
        self.reply(envelopes.workspace(self.subscription, view))

    @web.authenticated
    async def put(self, subscription, resource_group, name):
        self.check(subscription, resource_group)
        body = self.body()
        location = body.get("location")
        if not isinstance(location, str) or not location.strip():
            raise BatchAIError("InvalidRequestContent", 'location: give the workspace\'s location, e.g. "eastus"')
        tags = _tags(body.get("tags"))
        try:
            view, _ = await self.workspace(subscription, resource_group, name)
        except BatchAIError as missing:
            if missing.code == "ResourceNotFound":  # in another resource group: a name is one workspace here
                other = (await self.call(self.service.get_workspace, name))["resourceGroup"]
                raise BatchAIError(
                    "WorkspaceExists",
                    f"workspace '{name}' already exists in resource group '{other}'; workspace names are unique "
                    "in this service whatever their resource group: pick another name",
                    409,
                ) from None
            if missing.code != "WorkspaceNotFound":
                raise
            view = await self.call(self.service.create_workspace, name, resource_group, location.strip(), tags)
        else:  # PUT again: the same workspace, its tags as sent
            if "tags" in body:
                view = await self.call(self.service.set_workspace_tags, name, tags)
        self.reply_accepted(self.operations.done(view["location"]))

    @web.authenticated
    async def patch(self, subscription, resource_group, name):
        await self.workspace(subscription, resource_group, name)
        body = self.body()
        view = await self.call(self.service.set_workspace_tags, name, _tags(body.get("tags")))
        self.reply(envelopes.workspace(self.subscription, view))

    @web.authenticated
    async def delete(self, subscription, resource_group, name):
        try:
            view, _ = await self.workspace(subscription, resource_group, name)
        except BatchAIError as missing:
            if missing.code not in ("WorkspaceNotFound", "ResourceNotFound"):
                raise
            self.set_status(204)  # nothing of that name in that resource group: nothing to delete
            self.finish()
            return
        await delete_lro(self, view["location"], self.service.get_workspace, self.service.delete_workspace, name)


async def delete_lro(handler: ArmHandler, location: str, get, delete, *names: str) -> None:
    """ARM's DELETE: 204 when `get(*names)` finds nothing to delete, else 202 and `delete(*names)` as an
    operation."""
    try:
        await handler.call(get, *names)
    except BatchAIError as missing:
        if missing.status != 404:
            raise
        handler.set_status(204)
        handler.finish()
        return
    handler.reply_accepted(handler.operations.start(location, lambda: delete(*names)))


# -- experiments --------------------------------------------------------------------------------


class ExperimentsHandler(ArmHandler):
    @web.authenticated
    async def get(self, subscription, resource_group, workspace):
        _, base = await self.workspace(subscription, resource_group, workspace)
        views = await self.call(self.service.list_experiments, workspace)
        self.reply_list([envelopes.experiment(base, v) for v in views])


class ExperimentHandler(ArmHandler):
    @web.authenticated
    async def get(self, subscription, resource_group, workspace, name):
        _, base = await self.workspace(subscription, resource_group, workspace)
        self.reply(envelopes.experiment(base, await self.call(self.service.get_experiment, workspace, name)))

    @web.authenticated
    async def put(self, subscription, resource_group, workspace, name):
        view, _ = await self.workspace(subscription, resource_group, workspace)
        try:
            await self.call(self.service.get_experiment, workspace, name)
        except BatchAIError as missing:
            if missing.status != 404:
                raise
            await self.call(self.service.create_experiment, workspace, name)
        self.reply_accepted(self.operations.done(view["location"]))

    @web.authenticated
    async def delete(self, subscription, resource_group, workspace, name):
        view, _ = await self.workspace(subscription, resource_group, workspace)
        await delete_lro(
            self, view["location"], self.service.get_experiment, self.service.delete_experiment, workspace, name
        )


# -- clusters -----------------------------------------------------------------------------------


class ClustersHandler(ArmHandler):
    @web.authenticated
    async def get(self, subscription, resource_group, workspace):
        _, base = await self.workspace(subscription, resource_group, workspace)
        views = await self.call(self.service.list_clusters, workspace)
        self.reply_list([envelopes.cluster(base, v) for v in views])


class ClusterHandler(ArmHandler):
    @web.authenticated
    async def get(self, subscription, resource_group, workspace, name):
        _, base = await self.workspace(subscription, resource_group, workspace)
        self.reply(envelopes.cluster(base, await self.call(self.service.get_cluster, workspace, name)))

    @web.authenticated
    async def put(self, subscription, resource_group, workspace, name):
        view, _ = await self.workspace(subscription, resource_group, workspace)
        await self.call(self.service.create_cluster, workspace, self.body(), name)
        self.reply_accepted(self.operations.done(view["location"]))

    @web.authenticated
    async def patch(self, subscription, resource_group, workspace, name):
        _, base = await self.workspace(subscription, resource_group, workspace)
        properties = self.body().get("properties")
        scale = properties.get("scaleSettings") if isinstance(properties, dict) else None
        if not isinstance(scale, dict):
            raise BatchAIError(
                "InvalidRequestContent",
                'properties.scaleSettings: give {"manual": {"targetNodeCount": N}} or '
                '{"autoScale": {"minimumNodeCount": N, "maximumNodeCount": M}}',
            )
        view = await self.call(self.service.update_scale, workspace, name, scale)
        self.reply(envelopes.cluster(base, view))

    @web.authenticated
    async def delete(self, subscription, resource_group, workspace, name):
        view, _ = await self.workspace(subscription, resource_group, workspace)
        await delete_lro(self, view["location"], self.service.get_cluster, self.service.delete_cluster, workspace, name)


class ClusterRemoteLoginHandler(ArmHandler):
    @web.authenticated
    async def post(self, subscription, resource_group, workspace, name):
        await self.workspace(subscription, resource_group, workspace)
        nodes = await self.call(self.service.list_nodes, workspace, name)
        self.reply_list([envelopes.remote_login(n) for n in nodes])


# -- file servers -------------------------------------------------------------------------------


class FileServersHandler(ArmHandler):
    @web.authenticated
    async def get(self, subscription, resource_group, workspace):
        _, base = await self.workspace(subscription, resource_group, workspace)
        views = await self.call(self.service.list_file_servers, workspace)
        self.reply_list([envelopes.file_server(base, v) for v in views])


class FileServerHandler(ArmHandler):
    @web.authenticated
    async def get(self, subscription, resource_group, workspace, name):
        _, base = await self.workspace(subscription, resource_group, workspace)
        self.reply(envelopes.file_server(base, await self.call(self.service.get_file_server, workspace, name)))

    @web.authenticated
    async def put(self, subscription, resource_group, workspace, name):
        view, _ = await self.workspace(subscription, resource_group, workspace)
        properties = self.body().get("properties", {})
        if not isinstance(properties, dict):
            raise BatchAIError("InvalidRequestContent", "properties: give the file server's properties as an object")
        # vmSize, dataDisks, sshConfiguration and subnet describe a VM this service does not make; the
        # admin password in them is neither used nor kept.
        await self.call(self.service.create_file_server, workspace, name)
        self.reply_accepted(self.operations.done(view["location"]))

    @web.authenticated
    async def delete(self, subscription, resource_group, workspace, name):
        view, _ = await self.workspace(subscription, resource_group, workspace)
        await delete_lro(
            self, view["location"], self.service.get_file_server, self.service.delete_datastore, workspace, name
        )


# -- jobs ---------------------------------------------------------------------------------------


class JobsHandler(ArmHandler):
    @web.authenticated
    async def get(self, subscription, resource_group, workspace, experiment):
        _, base = await self.workspace(subscription, resource_group, workspace)
        request = self.page_request()
        page = await self.call(self.service.list_jobs, workspace, experiment, None, request.skip, request.size)
        self.reply_arm_page(page._replace(items=[envelopes.job(base, v) for v in page.items]), request)


class JobHandler(ArmHandler):
    @web.authenticated
    async def get(self, subscription, resource_group, workspace, experiment, name):
        _, base = await self.workspace(subscription, resource_group, workspace)
        self.reply(envelopes.job(base, await self.call(self.service.get_job, workspace, experiment, name)))

    @web.authenticated
    async def put(self, subscription, resource_group, workspace, experiment, name):
        view, _ = await self.workspace(subscription, resource_group, workspace)
        await self.call(self.service.create_job, workspace, experiment, self.body(), name)
        self.reply_accepted(self.operations.done(view["location"]))

    @web.authenticated
    async def delete(self, subscription, resource_group, workspace, experiment, name):
        view, _ = await self.workspace(subscription, resource_group, workspace)
        await delete_lro(
            self, view["location"], self.service.get_job, self.service.delete_job, workspace, experiment, name
        )


class JobTerminateHandler(ArmHandler):
    @web.authenticated
    async def post(self, subscription, resource_group, workspace, experiment, name):
        view, _ = await self.workspace(subscription, resource_group, workspace)
        await self.call(self.service.get_job, workspace, experiment, name)
        service = self.service

        def terminate() -> None:
            """Done when the job has ended (its tasks are stopped), not when it was asked to."""
            service.terminate_job(workspace, experiment, name)
            deadline = time.monotonic() + TERMINATE_WAIT_SECONDS
            while time.monotonic() < deadline:
                if service.get_job(workspace, experiment, name)["executionState"] in ("succeeded", "failed"):
                    return
                time.sleep(0.2)
            raise BatchAIError("TerminateTimedOut", f"job '{name}' did not stop within {TERMINATE_WAIT_SECONDS:.0f} s")

        self.reply_accepted(self.operations.start(view["location"], terminate))


class JobRemoteLoginHandler(ArmHandler):
    @web.authenticated
    async def post(self, subscription, resource_group, workspace, experiment, name):
        await self.workspace(subscription, resource_group, workspace)
        nodes = await self.call(self.service.list_job_nodes, workspace, experiment, name)
        self.reply_list([envelopes.remote_login(n) for n in nodes])


def link_signer(handler: ArmHandler) -> LinkSigner:
    """The signer of download links, with the home's key (read once per server)."""
    key = handler.settings.get("batchai_link_key")
    if key is None:
        key = handler.settings["batchai_link_key"] = load_key(handler.service.layout.root)
    return LinkSigner(key)


class JobOutputFilesHandler(ArmHandler):
    """POST .../listOutputFiles?outputdirectoryid=&directory=&linkexpiryinminutes=&maxresults="""

    @web.authenticated
    async def post(self, subscription, resource_group, workspace, experiment, name):
        await self.workspace(subscription, resource_group, workspace)
        output_id = self.get_query_argument("outputdirectoryid", None)
        if not output_id:
            raise BatchAIError(
                "InvalidArgument", "outputdirectoryid: the query parameter is required (stdouterr or an output's id)"
            )
        directory = self.get_query_argument("directory", ".")
        expiry = self.int_argument("linkexpiryinminutes", 60) or 60
        job = await self.call(self.service.get_job, workspace, experiment, name)
        entries = await self.call(
            self.service.list_job_files, workspace, experiment, name, output_id, directory, expiry
        )
        signer = link_signer(self)
        files = []
        for entry in entries:
            if entry["fileType"] not in ("file", "directory"):
                continue  # a symbolic link: never followed, so not offered
            link = entry.get("downloadUrl")
            if entry["fileType"] == "file" and not link:
                values = {
                    "ws": workspace,
                    "exp": experiment,
                    "job": name,
                    "uuid": job["uuid"],
                    "dir": output_id,
                    "path": entry["path"],
                }
                link = f"{self.absolute(LINK_PATH)}?{signer.query(values, expiry)}"
            files.append(envelopes.output_file(entry, link))
        self.reply_list(files)


class SignedJobFileHandler(FileHandlerMixin, ArmHandler):
    """A listed file's downloadUrl: no token, the link's signature instead (links.py)."""

    @allow_unauthenticated
    async def get(self):
        values = {field: self.get_query_argument(field, "") for field in LinkSigner.FIELDS}
        signer = link_signer(self)
        signer.check(values, self.get_query_argument("sig", ""))
        job = await self.call(self.service.get_job, values["ws"], values["exp"], values["job"])
        if job["uuid"] != values["uuid"]:
            raise BatchAIError("JobNotFound", "the job this link was made for was deleted", 404)
        offset, length = self.read_range()
        data = await self.call(
            self.service.read_job_file,
            values["ws"],
            values["exp"],
            values["job"],
            values["dir"],
            values["path"],
            offset,
            length,
        )
        self.reply_bytes(data, offset)


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
