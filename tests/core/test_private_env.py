"""The rule that keeps the service's own credentials out of every job (ports/compute.py PRIVATE_ENV), and the
clean environment a task starts with (task_base_env): the basics, never the service's settings."""

from __future__ import annotations

import pytest

from batchai_jupyter.ports.compute import PRIVATE_ENV, task_base_env

PRIVATE = [
    "BATCHAI_TOKEN",
    "JUPYTER_TOKEN",
    "JPY_API_TOKEN",
    "JPY_COOKIE_SECRET",
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_API_URL",
    "GITHUB_TOKEN",
    "hf_token",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "MY_DB_PASSWORD",
    "PGPASSWORD",
    "MLFLOW_TRACKING_PASSWORD",
    "OPENAI_API_KEY",
    "WANDB_API_KEY",
    "STRIPE_SECRET",
    "SSH_AUTH_SOCK",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "DOCKER_AUTH_CONFIG",
    "MY_SAS",
    "ENCRYPTION_KEY",
]
PUBLIC = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "VIRTUAL_ENV", "PYTHONPATH", "OMPI_MCA_btl", "CUDA_HOME"]


@pytest.mark.parametrize("name", PRIVATE)
def test_a_token_like_name_is_private(name):
    assert name in PRIVATE_ENV


@pytest.mark.parametrize("name", PUBLIC)
def test_a_basic_name_is_not_private(name):
    assert name not in PRIVATE_ENV


def test_a_task_starts_with_the_basics_only():
    service = {name: "x" for name in (*PRIVATE, *PUBLIC)}
    service |= {"BATCHAI_HOME": "/home/u/.batchai", "JUPYTER_RUNTIME_DIR": "/run/j", "MY_SETTING": "1"}
    assert task_base_env(service) == {name: "x" for name in PUBLIC}
