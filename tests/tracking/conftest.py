"""A real `jupyter server` with the batchai extension recording jobs in a real MLflow tracking store (SQLite,
read back with MLflow's own client), one per module: it runs jobs, TensorBoard and the proxy."""

from __future__ import annotations

import uuid

import pytest

from batchai_jupyter.client import Client
from helpers.api import make_cluster
from helpers.servers import Launch
from helpers.tools import free_port


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    """(Launch, Client, MLflow tracking URI): the server takes the URI from $MLFLOW_TRACKING_URI."""
    base = tmp_path_factory.mktemp("tracking")
    token = "tracking-" + uuid.uuid4().hex[:8]
    mlflow_uri = f"sqlite:///{base / 'mlflow.db'}"
    server = Launch(base, free_port())
    server.url += "user/me/"  # under a base URL, as behind JupyterHub: TensorBoard's URL and proxy follow it
    argv = server.jupyter_argv("--ServerApp.base_url=/user/me/")
    server.start(argv, token, JUPYTER_TOKEN=token, MLFLOW_TRACKING_URI=mlflow_uri)
    client = Client(server.url, token)
    make_cluster(client, "tracked", nodes=1)
    yield server, client, mlflow_uri
    server.stop()
