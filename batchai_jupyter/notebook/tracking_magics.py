"""`%batchai_tensorboard JOB|EXPERIMENT`: TensorBoard over a job's runs, or every job of an experiment,
opened in the notebook and served by the batchai service behind its login (no port to open)."""

from __future__ import annotations

import html

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..client import Client
from ..errors import BatchAIError
from .magics import _help, user_errors


class TensorBoardView:
    """What the magic returns: the TensorBoard's URL and runs; shown as a link and the page itself."""

    def __init__(self, opened: dict, height: int):
        self.url: str = opened["url"]
        self.runs: list[str] = opened["runs"]
        self.height = height

    def __repr__(self) -> str:
        return f"TensorBoard at {self.url} ({len(self.runs)} runs)"

    def _repr_html_(self) -> str:
        url = html.escape(self.url, quote=True)
        return (
            f'<p>TensorBoard over {len(self.runs)} runs: <a href="{url}" target="_blank">{url}</a></p>'
            f'<iframe src="{url}" width="100%" height="{self.height}" style="border: 0"></iframe>'
        )


@magics_class
class TrackingMagics(Magics):
    def __init__(self, shell=None, client: Client | None = None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self._client = client

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client.discover()
        return self._client

    @magic_arguments()
    @argument("name", nargs="?", help="a job of --experiment, or an experiment (all its jobs)")
    @argument("--experiment", "-e", default="default", help="the job's experiment (default: default)")
    @argument("--workspace", "-w", default="default", help="the workspace (default: default)")
    @argument("--height", type=int, default=640, help="height of the TensorBoard shown in the notebook, in pixels")
    @_help
    @line_magic
    @user_errors
    def batchai_tensorboard(self, args):
        """%batchai_tensorboard JOB|EXPERIMENT [-e EXPERIMENT]: opens TensorBoard over the job's runs (what it
        logged with log_metric, and the event files it wrote in its output directories, such as
        $AZ_BATCHAI_OUTPUT_TENSORBOARD), or over every job of the experiment."""
        client, workspace = self.client, args.workspace
        if not args.name:
            return TensorBoardView(client.open_tensorboard(workspace, args.experiment), args.height)
        try:
            return TensorBoardView(client.open_tensorboard(workspace, args.experiment, args.name), args.height)
        except BatchAIError as failure:
            if failure.code != "JobNotFound":
                raise
        try:
            return TensorBoardView(client.open_tensorboard(workspace, args.name), args.height)
        except BatchAIError as failure:
            if failure.code != "ExperimentNotFound":
                raise
        raise BatchAIError(
            "NotFound",
            f"{args.name!r} is neither a job of experiment {args.experiment!r} nor an experiment of workspace "
            f"{workspace!r}; list them with %batchai_jobs, or give the job's experiment with -e",
        )


def register_tracking_magics(ipython) -> None:
    ipython.register_magics(TrackingMagics(ipython))
