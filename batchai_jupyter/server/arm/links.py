"""Download links that work without the service's token, as Batch AI's SAS URLs did: the link names one
file of one job, carries its expiry, and is signed (HMAC-SHA256) with a key only the service holds
(`<home>/link-signing.key`, mode 600, made on first use). Anyone holding the link can read that file until
it expires, and nothing else."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from urllib.parse import urlencode

from ...errors import BatchAIError

KEY_FILE = "link-signing.key"
LINK_PATH = "/batchai/links/jobfile"


def load_key(home: str) -> bytes:
    path = os.path.join(home, KEY_FILE)
    try:
        with open(path, "rb") as handle:
            key = handle.read()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    descriptor = os.open(f"{path}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    os.replace(f"{path}.tmp", path)
    return key


class LinkSigner:
    FIELDS = ("ws", "exp", "job", "uuid", "dir", "path", "se")

    def __init__(self, key: bytes):
        self._key = key

    def _signature(self, values: dict[str, str]) -> str:
        message = "\n".join(f"{name}={values[name]}" for name in self.FIELDS).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def query(self, values: dict[str, str], expiry_minutes: int) -> str:
        """The query string of a link to the file `values` name (every FIELDS but se), valid that long."""
        signed = {**values, "se": str(int(time.time()) + 60 * expiry_minutes)}
        return urlencode({**{name: signed[name] for name in self.FIELDS}, "sig": self._signature(signed)})

    def check(self, values: dict[str, str], signature: str) -> None:
        """Raises 403 unless `values` (with se) were signed here and have not expired."""
        if set(values) != set(self.FIELDS) or not hmac.compare_digest(self._signature(values), signature):
            raise BatchAIError("AuthenticationFailed", "this download link is not valid (altered or cut)", 403)
        if not values["se"].isdigit() or int(values["se"]) < time.time():
            raise BatchAIError(
                "AuthenticationFailed", "this download link has expired; list the job's files again for a new one", 403
            )
