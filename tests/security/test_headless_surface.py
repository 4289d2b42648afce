"""`batchai serve` is the service only: none of Jupyter's APIs that would open its working directory,
kernels or terminals to whoever holds the token."""

from __future__ import annotations

import requests

from batchai_jupyter.client import Client

JUPYTER_ROUTES = [
    ("GET", "api/contents"),
    ("GET", "api/contents/README.md"),
    ("PUT", "api/contents/planted.py"),
    ("GET", "files/README.md"),
    ("GET", "view/README.md"),
    ("GET", "api/kernels"),
    ("POST", "api/kernels"),
    ("GET", "api/sessions"),
    ("POST", "api/sessions"),
    ("GET", "api/terminals"),
    ("POST", "api/terminals"),
    ("GET", "api/kernelspecs"),
    ("GET", "kernelspecs/python3/kernel.json"),
    ("GET", "api/nbconvert"),
    ("GET", "nbconvert/html/README.md"),
    ("GET", "api/config/notebook"),
    ("PATCH", "api/config/notebook"),
    ("GET", "api/status"),
    ("GET", "api/me"),
    ("POST", "api/shutdown"),
    ("GET", "tree"),
    ("GET", "lab"),
    ("GET", "edit/README.md"),
    ("GET", "api/events/subscribe"),
]


def test_headless_serve_answers_none_of_jupyters_own_apis(service_process, client: Client):
    token = service_process.env()["BATCHAI_TOKEN"]
    answered = {}
    for method, path in JUPYTER_ROUTES:
        response = requests.request(
            method,
            f"{service_process.url}{path}",
            headers={"Authorization": f"token {token}"},
            json={"type": "file", "format": "text", "content": "x"},
            timeout=30,
        )
        answered[f"{method} {path}"] = response.status_code
    assert set(answered.values()) <= {404, 405}, answered
    assert client.version()["api"] == "v1"  # still up: the shutdown was refused too
