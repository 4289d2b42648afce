"""The REST route that opens TensorBoard over a job or an experiment, and the authenticated proxy to it."""

from __future__ import annotations

from tornado import web

from ..errors import BatchAIError
from .handlers import API, NAME, BaseHandler
from .tensorboard import PROXY_PREFIX, TensorBoards


class TensorBoardHandler(BaseHandler):
    """POST -> {"url", "id", "runs"}: TensorBoard over the experiment's jobs, or over one job."""

    @property
    def tensorboards(self) -> TensorBoards:
        return self.settings["batchai_tensorboards"]

    @web.authenticated
    async def post(self, workspace, experiment, job=None):
        service = self.service
        logdirs = await self.call(service.tensorboard_logdirs, workspace, experiment, job)
        key = "/".join((workspace, experiment, job or ""))
        instance = await self.call(self.tensorboards.open, key, logdirs)
        self.reply({"id": instance.id, "url": f"{self.base_url}{PROXY_PREFIX}/{instance.id}/", "runs": sorted(logdirs)})


def proxy_handler():
    """jupyter-server-proxy's handler (authentication on every request, websockets, redirects), told the
    port of the TensorBoard an id names; None when it is not installed."""
    try:
        from jupyter_server_proxy.handlers import LocalProxyHandler
    except ImportError:
        return None

    class TensorBoardProxyHandler(LocalProxyHandler):
        def _port(self, instance_id: str) -> int:
            port = self.settings["batchai_tensorboards"].port_of(instance_id)
            if port is None:
                raise BatchAIError(
                    "TensorBoardNotRunning",
                    f"no TensorBoard {instance_id} runs here (the server restarted, or it was replaced); open it "
                    "again with %batchai_tensorboard or POST .../tensorboard",
                    status=404,
                )
            self.proxy_base = f"{PROXY_PREFIX}/{instance_id}"
            return port

        def write_error(self, status_code: int, **kwargs) -> None:
            error = kwargs.get("exc_info", (None, None))[1]
            if isinstance(error, BatchAIError):
                self.set_status(error.status)
                self.finish(error.to_json())
                return
            super().write_error(status_code, **kwargs)

        async def http_get(self, instance_id, path):
            return await self.proxy(instance_id, path)

        async def open(self, instance_id, path):
            return await self.proxy_open("localhost", self._port(instance_id), path)

        def proxy(self, instance_id, path):
            return super().proxy(self._port(instance_id), path)

    return TensorBoardProxyHandler


def tensorboard_routes() -> list[tuple]:
    experiment = f"{API}/workspaces/{NAME}/experiments/{NAME}"
    routes: list[tuple] = [
        (f"{experiment}/tensorboard", TensorBoardHandler),
        (f"{experiment}/jobs/{NAME}/tensorboard", TensorBoardHandler),
    ]
    handler = proxy_handler()
    if handler is not None:
        routes.append((f"/{PROXY_PREFIX}/([0-9a-f]+)(/.*|)", handler, {"absolute_url": False}))
    return routes
