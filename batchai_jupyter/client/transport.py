"""HTTP to the batchai service: one session, URL-quoted paths, and the service's errors as BatchAIError."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urljoin

import requests

from ..errors import BatchAIError

API = "batchai/api/v1"


def q(name: str) -> str:
    """One path segment, quoted so that '/', '?', '#' and spaces in a name cannot change the route."""
    return quote(str(name), safe="")


class Transport:
    def __init__(self, url: str, token: str = "", timeout: float = 60.0):
        self.url = url.rstrip("/") + "/"
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"token {token}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body=None,
        params=None,
        raw: bool = False,
        headers=None,
        stream: bool = False,
        data: bytes | None = None,
        timeout=None,
    ) -> Any:
        """`path` is relative to the API root, its segments already quoted (see `q`)."""
        url = f"{self.url}{API}/{path.lstrip('/')}"
        try:
            response = self.session.request(
                method,
                url,
                json=json_body,
                params=params,
                headers=headers,
                data=data,
                timeout=timeout or self.timeout,
                stream=stream,
            )
        except requests.ConnectionError:
            raise BatchAIError(
                "ServiceUnreachable",
                f"cannot reach the batchai service at {self.url}; is it running? (`batchai serve` starts one)",
                status=503,
            ) from None
        if response.status_code >= 400:
            raise error_from(response)
        if stream or raw:
            return response
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, /, **params) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def list(self, path: str, /, **params) -> list[dict]:
        """All items of a paged list, following nextLink (`params` may include the API's own `path`)."""
        items: list[dict] = []
        result = self.get(path, **params)
        while True:
            items.extend(result["value"])
            if "nextLink" not in result:
                return items
            # nextLink is the server's absolute path (base_url included), so resolve it against the host.
            response = self.session.get(urljoin(self.url, result["nextLink"]), timeout=self.timeout)
            if response.status_code >= 400:
                raise error_from(response)
            result = response.json()

    def close(self) -> None:
        self.session.close()


def error_from(response: requests.Response) -> BatchAIError:
    if response.status_code == 403:  # Jupyter's auth said no, often with a bare "Forbidden"
        try:
            reason = response.json().get("message") or "Forbidden"
        except ValueError:
            reason = "Forbidden"
        where = response.url.split("/batchai/")[0]
        return BatchAIError(
            "Forbidden",
            f"the batchai service at {where}/ refused the request (403 {reason}); "
            "check BATCHAI_TOKEN (the Jupyter server's token)",
            403,
        )
    try:
        body = response.json()
        return BatchAIError(body.get("error", "HttpError"), body.get("message", response.reason), response.status_code)
    except ValueError:
        return BatchAIError(
            "HttpError", f"{response.status_code} {response.reason} from {response.url}", response.status_code
        )
