"""Clusters and file servers of a workspace."""

from __future__ import annotations

from tornado import web

from ...errors import BatchAIError
from . import envelopes
from .base import ArmHandler, delete_lro
from .operations import CREATE, identity


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
        cluster = await self.call(self.service.create_cluster, workspace, self.body(), name)
        self.reply_accepted(view["location"], self.operations.done(CREATE, self.resource_id(), identity(cluster)))

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
        self.reply_accepted(view["location"], self.operations.done(CREATE, self.resource_id()))

    @web.authenticated
    async def delete(self, subscription, resource_group, workspace, name):
        view, _ = await self.workspace(subscription, resource_group, workspace)
        await delete_lro(
            self, view["location"], self.service.get_file_server, self.service.delete_datastore, workspace, name
        )
