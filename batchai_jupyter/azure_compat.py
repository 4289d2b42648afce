"""Microsoft's azure-mgmt-batchai SDK against this service, unchanged but for how the client is made:

    from azure.mgmt.batchai import BatchAI
    from batchai_jupyter.azure_compat import ServiceCredential

    credential = ServiceCredential()          # the service, found as the `batchai` CLI finds it
    client = BatchAI(credential, credential.subscription_id, base_url=credential.base_url,
                     **credential.client_options)

`ServiceCredential` is an azure-core TokenCredential whose token is the service's (sent as
`Authorization: Bearer <token>`, which the service takes as Jupyter's token). `client_options` lets the SDK
send it to the service's own URL also over plain http (azure-core sends bearer tokens over https only),
as the batchai CLI and magics do. `pip install batchai-jupyter[azure-compat]` installs the SDK.
"""

from __future__ import annotations

import time
from typing import Any

from .client.discovery import find_service
from .client.transport import Transport
from .errors import BatchAIError

try:
    from azure.core.credentials import AccessToken
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy
except ImportError as missing:  # pragma: no cover - the extra is not installed
    raise ImportError(
        "batchai_jupyter.azure_compat needs azure-core (with azure-mgmt-batchai): "
        "pip install 'batchai-jupyter[azure-compat]'"
    ) from missing

ARM_SCOPE = "https://management.azure.com/.default"  # what the SDK asks for; the service's token answers it
TOKEN_LIFETIME_SECONDS = 3600  # the service's token does not expire; the SDK asks again after this


class ServiceCredential:
    """The batchai service's URL, subscription and token, as an azure-core TokenCredential.

    `url`/`token` default to BATCHAI_URL/BATCHAI_TOKEN, else a running service found through Jupyter's
    runtime files, else a local `batchai serve` started for you (as the CLI does)."""

    def __init__(self, url: str | None = None, token: str | None = None, start: bool = True):
        if url is None:
            url, found_token = find_service(start)
            token = found_token if token is None else token
        self.base_url = url.rstrip("/")
        self._token = token or ""
        probe = Transport(self.base_url, self._token)
        try:
            version = probe.request("GET", "version")
        finally:
            probe.close()
        if "subscriptionId" not in version:
            raise BatchAIError(
                "ServiceTooOld", f"the batchai service at {self.base_url} has no ARM face; upgrade it", status=501
            )
        self.subscription_id: str = version["subscriptionId"]

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + TOKEN_LIFETIME_SECONDS)

    def close(self) -> None:
        """TokenCredential's: nothing to release."""

    def __enter__(self) -> ServiceCredential:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for `BatchAI(...)`: the bearer-token policy, allowed on the service's http URL."""
        return {"authentication_policy": ServiceTokenPolicy(self, ARM_SCOPE)}


class ServiceTokenPolicy(BearerTokenCredentialPolicy):
    """azure-core's bearer-token policy, for the service's own URL whatever its scheme."""

    def on_request(self, request: Any) -> None:
        request.context.options["enforce_https"] = False
        super().on_request(request)
