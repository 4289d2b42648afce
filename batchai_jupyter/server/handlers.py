"""Thin REST handlers over the Service, under /batchai/api/v1/, behind Jupyter's own auth.

Every handler turns its request into one Service call (run off the IOLoop thread) and its
result into JSON. Errors are `{"error": code, "message": ...}` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from .. import __version__
from ..core import uploads
from ..core.service import Page
from ..errors import BatchAIError, storage_failure
from ..jsonfile import FINITE_NUMBERS, MAX_JSON_DEPTH, nesting_depth
from ..runtime.metrics import METRICS_FILE
from .event_batches import EventBatches
from .paging import PageRequest, page_body, page_request, slice_page

log = logging.getLogger(__name__)

API = "/batchai/api/v1"
NAME = r"([^/]+)"
# JSON request bodies (specs, settings); file contents go through the upload routes, not this.
MAX_JSON_BODY_BYTES = 4 * 1024 * 1024
MAX_FILE_OFFSET = 2**63 - 1  # what a file offset (off_t) can hold


class BaseHandler(APIHandler):
    @property
    def service(self):
        service = self.settings.get("batchai_service")
        if service is None:
            reason = self.settings.get("batchai_unavailable", "the batchai service did not start")
            raise BatchAIError("ServiceUnavailable", reason, status=503)
        return service

    def body(self) -> dict:
        if not self.request.body:
            return {}
        if len(self.request.body) > MAX_JSON_BODY_BYTES:
            raise BatchAIError(
                "RequestTooLarge",
                f"request body is {len(self.request.body)} bytes; a JSON body "
                f"may be at most {MAX_JSON_BODY_BYTES} bytes",
                status=413,
            )
        try:
            document = json.loads(self.request.body, **FINITE_NUMBERS)
        except RecursionError:
            raise BatchAIError(
                "InvalidJson",
                "request body is nested too deeply to read; send a JSON object nested at most a few dozen levels",
            ) from None
        except ValueError as failure:
            raise BatchAIError(
                "InvalidJson", f"request body is not valid JSON ({failure}); send a JSON object"
            ) from None
        if not isinstance(document, dict):
            raise BatchAIError("InvalidJson", "request body must be a JSON object")
        if nesting_depth(document) > MAX_JSON_DEPTH:
            raise BatchAIError("InvalidJson", f"request body is nested more than {MAX_JSON_DEPTH} levels deep")
        return document

    def int_argument(self, name: str, default: int | None) -> int | None:
        value = self.get_query_argument(name, None)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise BatchAIError("InvalidArgument", f"{name}: {value!r} is not an integer") from None

    async def call(self, function: Callable, *args, **kwargs) -> Any:
        return await asyncio.to_thread(function, *args, **kwargs)

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(value))

    def page_request(self) -> PageRequest:
        return page_request(self.int_argument("maxresults", None), self.int_argument("skip", 0) or 0)

    def reply_page(self, items: list) -> None:
        """Replies with the requested page of a list the service returned whole."""
        request = self.page_request()
        self.reply_paged(slice_page(items, request), request)

    def reply_paged(self, page: Page, request: PageRequest) -> None:
        arguments = [(key, value.decode()) for key, values in self.request.query_arguments.items() for value in values]
        self.reply(page_body(page, request, self.request.path, arguments))

    def _user_error(self, error: BaseException | None) -> BaseException | None:
        """`error`, or the user's error it stands for (a full or read-only disk under the request)."""
        if error is None or isinstance(error, (BatchAIError, web.HTTPError)):
            return error
        service = self.settings.get("batchai_service")
        return storage_failure(error, service.store.path if service else "") or error

    def write_error(self, status_code: int, **kwargs) -> None:
        error = self._user_error(kwargs.get("exc_info", (None, None))[1])
        if isinstance(error, BatchAIError):
            self.set_status(error.status)
            body = error.to_json()
        elif isinstance(error, web.HTTPError):
            body = {"error": "HttpError", "message": error.log_message or self._reason}
        else:
            body = {"error": "InternalError", "message": "the service failed unexpectedly; see its log"}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def log_exception(self, typ, value, tb) -> None:
        user_error = self._user_error(value)
        if isinstance(user_error, BatchAIError):
            if user_error is not value:  # a disk accident: one line for whoever keeps the service
                log.warning("%s %s: %s", self.request.method, self.request.path, user_error.message)
            return  # a user's mistake, answered with its message; not a server fault
        super().log_exception(typ, value, tb)

    def send_error(self, status_code: int = 500, **kwargs) -> None:
        error = self._user_error(kwargs.get("exc_info", (None, None, None))[1])
        if isinstance(error, BatchAIError):
            status_code = error.status
        super().send_error(status_code, **kwargs)


class UsagesHandler(BaseHandler):
    @web.authenticated
    async def get(self):
        self.reply_page(await self.call(self.service.usages))


class VersionHandler(BaseHandler):
    @web.authenticated
    def get(self):
        service = self.service
        self.reply(
            {
                "version": __version__,
                "api": "v1",
                "home": service.layout.root,
                "subscriptionId": service.settings.subscription_id,  # of the ARM face (server/arm)
            }
        )


class BackendsHandler(BaseHandler):
    """The compute backends of this service, for forms that offer only those that can create a cluster."""

    @web.authenticated
    def get(self):
        self.reply_page(self.service.list_backends())


class WorkspacesHandler(BaseHandler):
    @web.authenticated
    async def get(self):
        self.reply_page(await self.call(self.service.list_workspaces))


class WorkspaceHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace):
        self.reply(await self.call(self.service.get_workspace, workspace))

    @web.authenticated
    async def put(self, workspace):
        """An optional body {"resourceGroup", "location"} says where its ARM id puts it (docs/arm-api.md)."""
        body = self.body()
        where = {}
        for field, argument in (("resourceGroup", "resource_group"), ("location", "location")):
            value = body.get(field)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                raise BatchAIError("InvalidArgument", f"{field}: give a non-empty string, or leave it out")
            where[argument] = value.strip()
        self.reply(await self.call(self.service.create_workspace, workspace, **where), 201)

    @web.authenticated
    async def delete(self, workspace):
        await self.call(self.service.delete_workspace, workspace)
        self.set_status(204)
        self.finish()


class ExperimentsHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace):
        self.reply_page(await self.call(self.service.list_experiments, workspace))


class ExperimentHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace, experiment):
        self.reply(await self.call(self.service.get_experiment, workspace, experiment))

    @web.authenticated
    async def put(self, workspace, experiment):
        self.reply(await self.call(self.service.create_experiment, workspace, experiment, self.body()), 201)

    @web.authenticated
    async def patch(self, workspace, experiment):
        self.reply(await self.call(self.service.update_experiment, workspace, experiment, self.body()))

    @web.authenticated
    async def delete(self, workspace, experiment):
        await self.call(self.service.delete_experiment, workspace, experiment)
        self.set_status(204)
        self.finish()


def with_download_links(entries: list[dict], content_url: str, extra: dict) -> list[dict]:
    for entry in entries:
        if entry["fileType"] == "file":  # a datastore's own link (a Blob SAS URL) is kept
            entry.setdefault("downloadUrl", f"{content_url}?{urlencode({**extra, 'path': entry['path']})}")
    return entries


class FileHandlerMixin:
    """Listing and ranged reads, shared by job and cluster files."""

    def reply_files(self: BaseHandler, entries: list[dict], content_url: str, extra: dict) -> None:
        self.reply_page(with_download_links(entries, content_url, extra))

    def reply_bytes(self: BaseHandler, data: bytes, offset: int) -> None:
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("X-BatchAI-Offset", str(offset))
        self.set_header("X-BatchAI-Next-Offset", str(offset + len(data)))
        if data and self.request.headers.get("Range"):
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {offset}-{offset + len(data) - 1}/*")
        self.finish(data)

    def read_range(self: BaseHandler) -> tuple[int, int | None]:
        offset = self.int_argument("offset", 0) or 0
        length = self.int_argument("length", None)
        header = self.request.headers.get("Range", "")
        if header:
            start, dash, end = header[6:].partition("-") if header.startswith("bytes=") else ("", "", "")
            if not (dash and start.isdigit() and (end == "" or end.isdigit())):
                raise BatchAIError(
                    "InvalidRange", f"Range: {header!r} is not supported; use bytes=<start>- or bytes=<start>-<end>"
                )
            offset = int(start)
            length = int(end) - offset + 1 if end else None
        if offset < 0 or (length is not None and length < 0):
            raise BatchAIError("InvalidRange", "offset and length must not be negative")
        if offset > MAX_FILE_OFFSET or (length is not None and length > MAX_FILE_OFFSET):
            raise BatchAIError(
                "InvalidRange", f"offset and length must be at most {MAX_FILE_OFFSET} (the largest file offset)"
            )
        return offset, length


class DatastoresHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace):
        self.reply_page(await self.call(self.service.list_datastores, workspace))


class DatastoreHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace, datastore):
        self.reply(await self.call(self.service.get_datastore, workspace, datastore))

    @web.authenticated
    async def put(self, workspace, datastore):
        self.reply(await self.call(self.service.create_datastore, workspace, datastore, self.body()), 201)

    @web.authenticated
    async def delete(self, workspace, datastore):
        await self.call(self.service.delete_datastore, workspace, datastore)
        self.set_status(204)
        self.finish()


class DatastoreFilesHandler(FileHandlerMixin, BaseHandler):
    @web.authenticated
    async def get(self, workspace, datastore):
        entries = await self.call(
            self.service.list_datastore_files, workspace, datastore, self.get_query_argument("path", ".")
        )
        self.reply_files(entries, f"{self.request.path}/content", {})


class DatastoreMissingHandler(BaseHandler):
    """POST {"files": [{"path", "size"}]} -> {"missing": [paths the datastore does not hold yet]}."""

    @web.authenticated
    async def post(self, workspace, datastore):
        files = self.body().get("files")
        store = await self.call(self.service.datastore, workspace, datastore)
        self.reply({"missing": await self.call(uploads.missing, store, files)})


class DatastoreFileContentHandler(FileHandlerMixin, BaseHandler):
    """PUT raw bytes into a datastore file: ?path=&offset=&final=true|false&sha256= (see core/uploads);
    GET reads one (ranged, like job files)."""

    @web.authenticated
    async def get(self, workspace, datastore):
        offset, length = self.read_range()
        data = await self.call(
            self.service.read_datastore_file, workspace, datastore, self.get_query_argument("path", ""), offset, length
        )
        self.reply_bytes(data, offset)

    @web.authenticated
    async def put(self, workspace, datastore):
        store = await self.call(self.service.datastore, workspace, datastore)
        final = self.get_query_argument("final", "true").lower() != "false"
        result = await self.call(
            uploads.write,
            store,
            self.get_query_argument("path", ""),
            self.request.body,
            self.int_argument("offset", 0) or 0,
            final,
            self.get_query_argument("sha256", None),
        )
        self.reply(result)


class ClustersHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace):
        self.reply_page(await self.call(self.service.list_clusters, workspace))

    @web.authenticated
    async def post(self, workspace):
        self.reply(await self.call(self.service.create_cluster, workspace, self.body()), 201)


class ClusterHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace, cluster):
        self.reply(await self.call(self.service.get_cluster, workspace, cluster))

    @web.authenticated
    async def put(self, workspace, cluster):
        self.reply(await self.call(self.service.create_cluster, workspace, self.body(), cluster), 201)

    @web.authenticated
    async def patch(self, workspace, cluster):
        body = self.body()
        properties = body.get("properties", body)
        scale = properties.get("scaleSettings") if isinstance(properties, dict) else None
        if not isinstance(scale, dict):
            problem = "missing" if scale is None else f"{scale!r} is not an object"
            raise BatchAIError(
                "InvalidSpec",
                f"scaleSettings: {problem}; PATCH a cluster with "
                '{"scaleSettings": {"manual": {...}} or {"autoScale": {...}}}',
            )
        self.reply(await self.call(self.service.update_scale, workspace, cluster, scale))

    @web.authenticated
    async def delete(self, workspace, cluster):
        await self.call(self.service.delete_cluster, workspace, cluster)
        self.set_status(204)
        self.finish()


class ClusterNodesHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace, cluster):
        self.reply_page(await self.call(self.service.list_nodes, workspace, cluster))


class ClusterNodeExecHandler(BaseHandler):
    @web.authenticated
    async def post(self, workspace, cluster, node):
        body = self.body()
        timeout = _exec_timeout(body)
        self.reply(await self.call(self.service.exec_on_node, workspace, cluster, node, body.get("command"), timeout))


class JobNodeExecHandler(BaseHandler):
    @web.authenticated
    async def post(self, workspace, experiment, job, node=""):
        body = self.body()
        timeout = _exec_timeout(body)
        self.reply(
            await self.call(
                self.service.exec_on_job_node, workspace, experiment, job, node, body.get("command"), timeout
            )
        )


def _exec_timeout(body: dict) -> float:
    timeout = body.get("timeout", 300.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        raise BatchAIError("InvalidArgument", f"timeout: {timeout!r} is not a number of seconds from 1 to 3600")
    return float(timeout)


class JobsHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace, experiment=None):
        state, request = self.get_query_argument("state", None), self.page_request()
        self.reply_paged(
            await self.call(self.service.list_jobs, workspace, experiment, state, request.skip, request.size), request
        )

    @web.authenticated
    async def post(self, workspace, experiment):
        self.reply(await self.call(self.service.create_job, workspace, experiment, self.body()), 201)


class JobHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace, experiment, job):
        self.reply(await self.call(self.service.get_job, workspace, experiment, job))

    @web.authenticated
    async def put(self, workspace, experiment, job):
        cluster = self.get_query_argument("cluster", None)
        self.reply(await self.call(self.service.create_job, workspace, experiment, self.body(), job, cluster), 201)

    @web.authenticated
    async def delete(self, workspace, experiment, job):
        keep_files = self.get_query_argument("keepFiles", "false").lower()
        if keep_files not in ("true", "false"):
            raise BatchAIError("InvalidArgument", f"keepFiles: {keep_files!r} is not valid; use true or false")
        keep_files = keep_files == "true"
        await self.call(self.service.delete_job, workspace, experiment, job, keep_files)
        self.set_status(204)
        self.finish()


class JobTerminateHandler(BaseHandler):
    @web.authenticated
    async def post(self, workspace, experiment, job):
        self.reply(await self.call(self.service.terminate_job, workspace, experiment, job))


class JobTasksHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace, experiment, job):
        self.reply_page(await self.call(self.service.list_tasks, workspace, experiment, job))


class JobNodesHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace, experiment, job):
        self.reply_page(await self.call(self.service.list_job_nodes, workspace, experiment, job))


class JobFilesHandler(FileHandlerMixin, BaseHandler):
    @web.authenticated
    async def get(self, workspace, experiment, job):
        output_id = self.get_query_argument("outputdirectoryid", "stdouterr")
        path = self.get_query_argument("path", ".")
        entries = await self.call(
            self.service.list_job_files,
            workspace,
            experiment,
            job,
            output_id,
            path,
            self.int_argument("linkexpiryinminutes", None),
        )
        self.reply_files(entries, f"{self.request.path}/content", {"outputdirectoryid": output_id})


class JobFileContentHandler(FileHandlerMixin, BaseHandler):
    @web.authenticated
    async def get(self, workspace, experiment, job):
        output_id = self.get_query_argument("outputdirectoryid", "stdouterr")
        path = self.get_query_argument("path", "")
        offset, length = self.read_range()
        data = await self.call(self.service.read_job_file, workspace, experiment, job, output_id, path, offset, length)
        self.reply_bytes(data, offset)


class JobSnapshotHandler(BaseHandler):
    """GET the job, its tasks, log tails with offsets, metrics and output files in one response:
    ?tailbytes=N (the last N bytes of each log), &since=OFFSET:FILE (repeatable: read FILE on from OFFSET)."""

    @web.authenticated
    async def get(self, workspace, experiment, job):
        since: dict[str, int] = {}
        for value in self.get_query_arguments("since"):
            offset, colon, path = value.partition(":")
            if not (colon and path and offset.isdigit()):
                raise BatchAIError(
                    "InvalidArgument", f"since: {value!r} is not OFFSET:FILE; give e.g. since=1024:stdout-0.txt"
                )
            since[path] = int(offset)
        snapshot = await self.call(
            self.service.job_snapshot,
            workspace,
            experiment,
            job,
            self.int_argument("tailbytes", self.service.SNAPSHOT_TAIL_BYTES),
            since,
            METRICS_FILE,
        )
        content_url = self.request.path[: -len("/snapshot")] + "/files/content"
        for output_id, entries in snapshot["outputFiles"].items():
            with_download_links(entries, content_url, {"outputdirectoryid": output_id})
        self.reply(snapshot)


class ClusterFilesHandler(FileHandlerMixin, BaseHandler):
    @web.authenticated
    async def get(self, workspace, cluster):
        entries = await self.call(
            self.service.list_cluster_files, workspace, cluster, self.get_query_argument("path", ".")
        )
        self.reply_files(entries, f"{self.request.path}/content", {})


class ClusterFileContentHandler(FileHandlerMixin, BaseHandler):
    @web.authenticated
    async def get(self, workspace, cluster):
        offset, length = self.read_range()
        data = await self.call(
            self.service.read_cluster_file, workspace, cluster, self.get_query_argument("path", ""), offset, length
        )
        self.reply_bytes(data, offset)


class EventsHandler(BaseHandler):
    """Server-sent events: one `data:` line of JSON per state change, optionally filtered."""

    KEEPALIVE_SECONDS = 15.0

    @web.authenticated
    async def get(self):
        wanted = {
            k: self.get_query_argument(k)
            for k in ("type", "workspace", "experiment", "name")
            if self.get_query_argument(k, None)
        }
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        batches = EventBatches(asyncio.get_running_loop())

        def deliver(event: dict) -> None:
            if all(str(event.get(k)) == v for k, v in wanted.items()):
                batches.put(event)

        unsubscribe = self.service.events.subscribe(deliver)
        try:
            self.write(": connected\n\n")
            await self.flush()
            while True:
                events = await batches.take(self.KEEPALIVE_SECONDS)
                self.write("".join(f"data: {json.dumps(event)}\n\n" for event in events) or ": keepalive\n\n")
                await self.flush()
        except StreamClosedError:
            pass
        finally:
            unsubscribe()


def routes() -> list[tuple[str, type]]:
    ws = f"{API}/workspaces/{NAME}"
    job = f"{ws}/experiments/{NAME}/jobs/{NAME}"
    cluster = f"{ws}/clusters/{NAME}"
    return [
        (f"{API}/version", VersionHandler),
        (f"{API}/usages", UsagesHandler),
        (f"{API}/backends", BackendsHandler),
        (f"{API}/events", EventsHandler),
        (f"{API}/workspaces", WorkspacesHandler),
        (ws, WorkspaceHandler),
        (f"{ws}/experiments", ExperimentsHandler),
        (f"{ws}/experiments/{NAME}", ExperimentHandler),
        (f"{ws}/datastores", DatastoresHandler),
        (f"{ws}/datastores/{NAME}", DatastoreHandler),
        (f"{ws}/datastores/{NAME}/files", DatastoreFilesHandler),
        (f"{ws}/datastores/{NAME}/missing", DatastoreMissingHandler),
        (f"{ws}/datastores/{NAME}/files/content", DatastoreFileContentHandler),
        (f"{ws}/clusters", ClustersHandler),
        (cluster, ClusterHandler),
        (f"{cluster}/nodes", ClusterNodesHandler),
        (f"{cluster}/nodes/{NAME}/exec", ClusterNodeExecHandler),
        (f"{cluster}/files", ClusterFilesHandler),
        (f"{cluster}/files/content", ClusterFileContentHandler),
        (f"{ws}/jobs", JobsHandler),
        (f"{ws}/experiments/{NAME}/jobs", JobsHandler),
        (job, JobHandler),
        (f"{job}/terminate", JobTerminateHandler),
        (f"{job}/tasks", JobTasksHandler),
        (f"{job}/nodes", JobNodesHandler),
        (f"{job}/nodes/exec", JobNodeExecHandler),
        (f"{job}/nodes/{NAME}/exec", JobNodeExecHandler),
        (f"{job}/files", JobFilesHandler),
        (f"{job}/files/content", JobFileContentHandler),
        (f"{job}/snapshot", JobSnapshotHandler),
    ]
