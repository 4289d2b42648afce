"""batchai-jupyter: Azure Batch AI's clusters, jobs and storage, inside Jupyter.

Kept import-light: the job wrapper and the CLI import this package, so nothing heavy loads here
(`Workspace` and the IPython extension load their modules when first used).
"""

from __future__ import annotations

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict]:
    from .server.app import BatchAIApp

    return [{"module": "batchai_jupyter", "app": BatchAIApp}]


def _jupyter_labextension_paths() -> list[dict]:
    """The prebuilt Lab panel (labextension/ built into ./labextension), for `jupyter labextension develop`."""
    return [{"src": "labextension", "dest": "batchai-jupyter"}]


def load_ipython_extension(ipython) -> None:
    """`%load_ext batchai_jupyter`: registers %batchai_cluster, %%batchai_job, %batchai_jobs, ..."""
    from .notebook.magics import BatchAIMagics
    from .notebook.tracking_magics import register_tracking_magics

    ipython.register_magics(BatchAIMagics)
    register_tracking_magics(ipython)


def __getattr__(name: str):
    if name == "Workspace":
        from .notebook.workspace import Workspace

        return Workspace
    raise AttributeError(f"module 'batchai_jupyter' has no attribute {name!r}")
