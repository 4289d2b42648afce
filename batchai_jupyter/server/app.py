"""The Jupyter server extension, and the same app run headless by `batchai serve`."""
from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Float, Unicode, default

from ..assembly import build_service
from ..core.service import Settings
from ..errors import BatchAIError
from ..ports.layout import default_home
from .handlers import routes


class BatchAIApp(ExtensionApp):
    """Manages clusters, datastores and the job queue inside a Jupyter server."""

    name = "batchai_jupyter"
    description = "Batch AI for Jupyter: clusters, storage and a priority job queue"
    load_other_extensions = True

    home = Unicode(help="Where the store, local datastores and local nodes live "
                        "(default: $BATCHAI_HOME, else <jupyter data dir>/batchai)").tag(config=True)
    heartbeat_seconds = Float(2.0, help="How often job wrappers prove they are alive").tag(config=True)
    backend_options = Dict(help="Per-backend configuration, by backend name, for example "
                                "{'ssh': {'hosts': ['gpu1', 'gpu2']}}").tag(config=True)
    exit_if_unavailable = Bool(False, help="Stop the whole server when the service cannot start (for example "
                                           "HomeInUse); `batchai serve` sets it, since the service is all "
                                           "that server is for").tag(config=True)

    @default("home")
    def _default_home(self) -> str:
        return default_home()

    def initialize_settings(self) -> None:
        service = build_service(Settings(home=self.home, heartbeat_seconds=self.heartbeat_seconds,
                                         backend_options=dict(self.backend_options)))
        try:
            service.start()
        except BatchAIError as failure:
            service.store.close()
            self.log.error("batchai: %s: %s", failure.code, failure.message)
            if self.exit_if_unavailable:
                raise SystemExit(1) from None  # not an Exception: the server's extension loader does not swallow it
            self.settings["batchai_unavailable"] = failure.message
            return
        self.service = service
        self.settings["batchai_service"] = service
        self.log.info("batchai: service running with home %s", self.home)

    def initialize_handlers(self) -> None:
        self.handlers.extend(routes())

    async def stop_extension(self) -> None:
        service = self.settings.get("batchai_service")
        if service is not None:
            service.stop()


class HeadlessBatchAIApp(BatchAIApp):
    """`batchai serve`: the service alone, no notebook UI, no other extensions."""

    load_other_extensions = False
    open_browser = False
    serverapp_config = {"open_browser": False}
