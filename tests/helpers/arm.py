"""Plain HTTP to the service's ARM face (server/arm), as Batch AI's REST examples call it."""

from __future__ import annotations

import requests

from .waits import wait_for

# Not the default subscription: the tests prove the configured one is used everywhere.
SUBSCRIPTION = "5d2c9cd6-8e0e-4b0e-9d4c-0c1f6b3a7e21"
API_VERSION = "2018-05-01"


class ArmHttp:
    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, body=None, api_version: str | None = API_VERSION, **params):
        if api_version is not None:
            params["api-version"] = api_version
        return self.session.request(method, f"{self.url}{path}", json=body, params=params, timeout=60)

    def follow(self, response: requests.Response) -> requests.Response:
        """Follows a 202's Azure-AsyncOperation until the operation ends; returns the Location's answer."""
        assert response.status_code == 202, response.text
        assert response.headers["Retry-After"].isdigit()
        status_url = response.headers["Azure-AsyncOperation"]

        def ended():
            response = self.session.get(status_url, timeout=60)
            status = response.json()
            if status["status"] in ("Succeeded", "Failed"):
                return status
            assert response.headers["Retry-After"].isdigit()  # else the SDK waits 30 s
            return None

        status = wait_for(ended, "the operation to end", timeout=120)
        assert status["status"] == "Succeeded", status
        return self.session.get(response.headers["Location"], timeout=60)
