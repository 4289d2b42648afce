"""batchai-jupyter: Azure Batch AI's clusters, jobs and storage, inside Jupyter.

Kept import-light: the job wrapper and the CLI import this package, so nothing heavy loads here.
"""
from __future__ import annotations

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict]:
    from .server.app import BatchAIApp

    return [{"module": "batchai_jupyter", "app": BatchAIApp}]
