"""Jobs of an experiment: create, get, list, delete, terminate, their nodes, and their output files with
download links that need no token."""

from __future__ import annotations

import functools
import re

from jupyter_server.auth.decorator import allow_unauthenticated
from tornado import web

from ...errors import BatchAIError
from ..handlers import FileHandlerMixin
from . import envelopes
from .base import ArmHandler, delete_lro
from .links import LINK_PATH, LinkSigner, load_key
from .operations import CREATE, TERMINATE, identity

# The workspace a cluster's ARM id names (Batch AI's own examples also write `/workspace/`).
CLUSTER_WORKSPACE = re.compile(r"/workspaces?/([^/]+)/clusters/[^/]+/?$", re.IGNORECASE)


def _check_cluster_workspace(body: dict, workspace: str) -> None:
    """Batch AI let a job run on another workspace's cluster; here a job runs on a cluster of its own
    workspace, so an id naming another one is refused rather than taken for a cluster of the same name here."""
    properties = body.get("properties")
    cluster = properties.get("cluster") if isinstance(properties, dict) else None
    arm_id = cluster.get("id") if isinstance(cluster, dict) else None
    named = CLUSTER_WORKSPACE.search(arm_id) if isinstance(arm_id, str) else None
    if named and named.group(1).lower() != workspace.lower():
        raise BatchAIError(
            "ClusterInOtherWorkspace",
            f"properties.cluster.id: {arm_id!r} is a cluster of workspace '{named.group(1)}'; a job here runs on a "
            f"cluster of its own workspace ('{workspace}'): create the job in that workspace, or a cluster in this one",
        )


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
        body = self.body()
        _check_cluster_workspace(body, workspace)
        job = await self.call(self.service.create_job, workspace, experiment, body, name)
        self.reply_accepted(view["location"], self.operations.done(CREATE, self.resource_id(), identity(job)))

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
        job = await self.call(self.service.get_job, workspace, experiment, name)
        # done when the job has ended (its tasks are stopped), not when it was asked to: operations.status_of
        operation = self.operations.start(
            TERMINATE,
            self.resource_id().rsplit("/", 1)[0],
            functools.partial(self.service.terminate_job, workspace, experiment, name),
            identity(job),
        )
        self.reply_accepted(view["location"], operation)


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
