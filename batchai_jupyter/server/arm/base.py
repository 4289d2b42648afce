"""What every ARM handler shares: the api-version and subscription checks, the workspace a resource group
names, ARM's error body, absolute URLs, nextLink paging and the 202 of a long-running operation."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.utils import url_path_join
from tornado import web

from ...core.service import Page
from ...errors import BatchAIError
from ..handlers import BaseHandler
from ..paging import page_body, slice_page
from .ids import API_VERSION, RESOURCE_GROUP_NAME, operation_path, workspace_id
from .operations import DELETE, RETRY_AFTER_SECONDS, Operations, identity

_HTTP_CODES = {403: "AuthenticationFailed", 404: "NotFound", 405: "MethodNotAllowed", 413: "RequestTooLarge"}


class ArmHandler(BaseHandler):
    @property
    def operations(self) -> Operations:
        return self.settings.setdefault("batchai_arm_operations", Operations())

    # -- checks --------------------------------------------------------------------------------

    def check(self, subscription: str | None = None, resource_group: str | None = None) -> None:
        version = self.get_query_argument("api-version", None)
        if version is None:
            raise BatchAIError(
                "MissingApiVersionParameter", f"api-version: the query parameter is required; use {API_VERSION}"
            )
        if version != API_VERSION:
            raise BatchAIError(
                "InvalidApiVersionParameter",
                f"api-version: {version!r} is not supported; this service speaks Microsoft.BatchAI {API_VERSION}",
            )
        if subscription is not None and subscription.lower() != self.subscription.lower():
            raise BatchAIError(
                "SubscriptionNotFound",
                f"subscription '{subscription}' is not served here; this service is subscription "
                f"'{self.subscription}' (set BATCHAI_SUBSCRIPTION_ID or c.BatchAIApp.subscription_id to change it)",
                404,
            )
        if resource_group is not None and not RESOURCE_GROUP_NAME.match(resource_group):
            raise BatchAIError(
                "InvalidResourceGroupName",
                f"resourceGroupName: {resource_group!r} is not valid; "
                "use 1 to 90 letters, digits, '-', '_', '.', '(', ')'",
            )

    @property
    def subscription(self) -> str:
        return self.service.settings.subscription_id

    async def workspace(self, subscription: str, resource_group: str, name: str) -> tuple[dict[str, Any], str]:
        """The workspace's view and ARM id, after the checks; 404 if it is not in that resource group."""
        self.check(subscription, resource_group)
        view = await self.call(self.service.get_workspace, name)
        if view["resourceGroup"].lower() != resource_group.lower():
            raise BatchAIError(
                "ResourceNotFound",
                f"workspace '{name}' is not in resource group '{resource_group}' (it is in '{view['resourceGroup']}')",
                404,
            )
        return view, workspace_id(self.subscription, view["resourceGroup"], name)

    def body(self) -> dict:
        document = super().body()
        if not document:
            raise BatchAIError("InvalidRequestContent", "the request body is empty; send the resource's parameters")
        return document

    # -- replies -------------------------------------------------------------------------------

    def absolute(self, path: str) -> str:
        """`path` (from the server's root, base_url excluded) as a URL a client can call."""
        return f"{self.request.protocol}://{self.request.host}{url_path_join(self.base_url, path)}"

    def reply_arm_page(self, page: Page, request: Any) -> None:
        arguments = [(key, value.decode()) for key, values in self.request.query_arguments.items() for value in values]
        body = page_body(page, request, self.request.path, arguments)
        if "nextLink" in body:  # the SDK follows it as it is: it must be a whole URL
            body["nextLink"] = f"{self.request.protocol}://{self.request.host}{body['nextLink']}"
        self.reply(body)

    def reply_list(self, items: list[dict[str, Any]]) -> None:
        request = self.page_request()
        self.reply_arm_page(slice_page(items, request), request)

    def resource_id(self) -> str:
        """The ARM id of the resource the request names (its path, without the query)."""
        return url_path_join("/", self.request.path[len(self.base_url.rstrip("/")) :])

    def reply_accepted(self, location: str, operation_id: str) -> None:
        """202 with where to follow the operation, as ARM answers a PUT, DELETE or action it runs."""
        self.set_status(202)
        query = f"?api-version={API_VERSION}"
        for header, kind in (("Azure-AsyncOperation", "operationStatuses"), ("Location", "operationresults")):
            self.set_header(
                header, self.absolute(operation_path(self.subscription, location, kind, operation_id)) + query
            )
        self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
        self.finish()

    def write_error(self, status_code: int, **kwargs) -> None:
        error = kwargs.get("exc_info", (None, None))[1]
        if isinstance(error, BatchAIError):
            self.set_status(error.status)
            body = {"error": {"code": error.code, "message": error.message}}
        elif isinstance(error, web.HTTPError):
            code = _HTTP_CODES.get(status_code, "BadRequest" if status_code < 500 else "InternalServerError")
            body = {"error": {"code": code, "message": error.log_message or self._reason}}
        else:
            body = {"error": {"code": "InternalServerError", "message": "the service failed unexpectedly; see its log"}}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


async def delete_lro(handler: ArmHandler, location: str, get, delete, *names: str) -> None:
    """ARM's DELETE: 204 when `get(*names)` finds nothing to delete, else 202 and `delete(*names)` as an
    operation."""
    try:
        view = await handler.call(get, *names)
    except BatchAIError as missing:
        if missing.status != 404:
            raise
        handler.set_status(204)
        handler.finish()
        return
    operation = handler.operations.start(DELETE, handler.resource_id(), lambda: delete(*names), identity(view))
    handler.reply_accepted(location, operation)
