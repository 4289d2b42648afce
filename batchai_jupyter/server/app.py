"""The Jupyter server extension, and the same app run headless by `batchai serve`."""

from __future__ import annotations

import os

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from traitlets import Bool, Dict, Float, Unicode, default

from ..assembly import build_service
from ..core.service import DEFAULT_SUBSCRIPTION, Settings
from ..errors import BatchAIError
from ..ports.layout import default_home
from . import arm
from .handlers import routes
from .tensorboard import TensorBoards
from .tensorboard_handlers import tensorboard_routes


class BatchAIApp(ExtensionApp):
    """Manages clusters, datastores and the job queue inside a Jupyter server."""

    name = "batchai_jupyter"
    description = "Batch AI for Jupyter: clusters, storage and a priority job queue"
    load_other_extensions = True

    home = Unicode(
        help="Where the store, local datastores and local nodes live "
        "(default: $BATCHAI_HOME, else <jupyter data dir>/batchai)"
    ).tag(config=True)
    heartbeat_seconds = Float(2.0, help="How often job wrappers prove they are alive").tag(config=True)
    backend_options = Dict(
        help="Per-backend configuration, by backend name, for example {'ssh': {'hosts': ['gpu1', 'gpu2']}}"
    ).tag(config=True)
    exit_if_unavailable = Bool(
        False,
        help="Stop the whole server when the service cannot start (for example "
        "HomeInUse); `batchai serve` sets it, since the service is all "
        "that server is for",
    ).tag(config=True)
    no_auth_i_have_my_own_proxy = Bool(
        False,
        help="Serve the API although the Jupyter server checks no token or "
        "password, because a proxy in front of it authenticates every "
        "request. Logged at every start.",
    ).tag(config=True)
    refuse_without_auth = Bool(
        False,
        help="Stop the server when it checks no token or password and "
        "no_auth_i_have_my_own_proxy is not set (`batchai serve` sets it); "
        "inside a user's Jupyter server a loud warning is logged "
        "instead",
    ).tag(config=True)

    subscription_id = Unicode(
        help="The subscription id of Batch AI's ARM paths and job folders (/subscriptions/<id>/...); "
        "default: $BATCHAI_SUBSCRIPTION_ID, else 00000000-0000-0000-0000-000000000000 (docs/arm-api.md)"
    ).tag(config=True)

    mlflow_tracking_uri = Unicode(
        help="Record every job as a run of the MLflow experiment of the same name at this tracking URI "
        "(http://..., file:///..., sqlite:///...); default: $MLFLOW_TRACKING_URI, else off"
    ).tag(config=True)

    @default("mlflow_tracking_uri")
    def _default_mlflow_tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI", "")

    @default("home")
    def _default_home(self) -> str:
        return default_home()

    @default("subscription_id")
    def _default_subscription_id(self) -> str:
        return os.environ.get("BATCHAI_SUBSCRIPTION_ID") or DEFAULT_SUBSCRIPTION

    def initialize_settings(self) -> None:
        self._check_auth()
        service = None
        try:
            service = build_service(
                Settings(
                    home=self.home,
                    heartbeat_seconds=self.heartbeat_seconds,
                    backend_options=dict(self.backend_options),
                    subscription_id=self.subscription_id,
                    mlflow_tracking_uri=self.mlflow_tracking_uri,
                )
            )
            service.start()
        except BatchAIError as failure:  # e.g. HomeInUse, StoreDamaged
            if service is not None:
                service.store.close()
            self.log.error("batchai: %s: %s", failure.code, failure.message)
            if self.exit_if_unavailable:
                raise SystemExit(1) from None  # not an Exception: the server's extension loader does not swallow it
            self.settings["batchai_unavailable"] = failure.message
            return
        self.service = service
        self.settings["batchai_service"] = service
        self.settings["batchai_tensorboards"] = TensorBoards(os.path.join(self.home, "tensorboard"))
        self.log.info("batchai: service running with home %s", self.home)

    def _check_auth(self) -> None:
        if self.serverapp.identity_provider.auth_enabled:
            return
        if self.no_auth_i_have_my_own_proxy:
            self.log.warning(
                "batchai: AUTHENTICATION IS OFF by choice (no_auth_i_have_my_own_proxy): the API "
                "trusts every request that reaches it; only a proxy in front of %s protects it",
                self.serverapp.connection_url,
            )
            return
        if self.refuse_without_auth:
            self.log.error(
                "batchai: refusing to serve without authentication: the token is empty. Set "
                "BATCHAI_TOKEN or --token-file to a secret, or pass --no-auth-i-have-my-own-proxy "
                "if a proxy in front of this service authenticates every request"
            )
            raise SystemExit(2)  # not an Exception: the server's extension loader does not swallow it
        # Inside a user's Jupyter server: its kernels and terminals are as open as this API, so refusing the
        # API would protect nothing and break setups that switched auth off on purpose (Jupyter's own
        # convention is a warning too); say loudly what is exposed and how to silence it.
        self.log.warning(
            "batchai: WARNING: this Jupyter server checks no token or password, so anyone who can "
            "connect to %s can run jobs, read job files and datastores as this user through the "
            "batchai API. Set a token (ServerApp.token / IdentityProvider.token) or, if a proxy in "
            "front authenticates every request, set c.BatchAIApp.no_auth_i_have_my_own_proxy = True",
            self.serverapp.connection_url,
        )

    def initialize_handlers(self) -> None:
        self.handlers.extend(routes())
        self.handlers.extend(arm.routes())
        self.handlers.extend(tensorboard_routes())

    async def stop_extension(self) -> None:
        tensorboards = self.settings.get("batchai_tensorboards")
        if tensorboards is not None:
            tensorboards.stop_all()
        service = self.settings.get("batchai_service")
        if service is not None:
            service.stop()


class NoFilesContentsManager(AsyncLargeFileManager):
    """Jupyter's contents manager without the /files/ route it adds to the server."""

    def get_extra_handlers(self) -> list:
        return []


class ServiceOnlyServerApp(ServerApp):
    """A Jupyter server with none of Jupyter's own APIs (contents, files, kernels, sessions, terminals, ...):
    `batchai serve` is the service, not a way into its working directory. `auth` stays: it is the login."""

    default_services = ("auth",)

    @default("contents_manager_class")
    def _default_contents_manager_class(self) -> type:
        return NoFilesContentsManager


class HeadlessBatchAIApp(BatchAIApp):
    """`batchai serve`: the service alone, no notebook UI, no other extensions, none of Jupyter's APIs."""

    serverapp_class = ServiceOnlyServerApp
    load_other_extensions = False
    open_browser = False
    serverapp_config = {"open_browser": False}
