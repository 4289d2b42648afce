"""Workspaces (in their resource group) and their experiments."""

from __future__ import annotations

from tornado import web

from ...errors import BatchAIError
from . import envelopes
from .base import ArmHandler, delete_lro
from .operations import CREATE

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
        self.reply_accepted(view["location"], self.operations.done(CREATE, self.resource_id()))

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
        self.reply_accepted(view["location"], self.operations.done(CREATE, self.resource_id()))

    @web.authenticated
    async def delete(self, subscription, resource_group, workspace, name):
        view, _ = await self.workspace(subscription, resource_group, workspace)
        await delete_lro(
            self, view["location"], self.service.get_experiment, self.service.delete_experiment, workspace, name
        )
