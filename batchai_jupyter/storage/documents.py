"""Datastore create requests and the views the API returns (never with a key, SAS or connection string).

A create request (JSON, camelCase like the rest of the API):

    {"kind": "blob", "containerName": "data", "connectionString": "..."}
    {"kind": "blob", "containerName": "data", "accountName": "acct", "accountKey": "...", "endpoint": "..."}
    {"kind": "blob", "containerName": "data", "accountName": "acct", "sasToken": "sv=..."}
    {"kind": "blob", "containerName": "data", "accountName": "acct", "credential": "default"}
    {"kind": "local", "path": "/shared/data"}            (a directory every node sees at that path)

Optional: "linkExpiryInMinutes" (SAS links in file listings, default 60), "flushSeconds" (how often
running jobs' logs and outputs are copied out, default 2), "retries" (per storage request, default 3,
1 + 2, 1 + 4, 1 + 8 seconds apart), "createContainer": true.
"""

from __future__ import annotations

import os

from ..errors import BatchAIError
from ..ports.datastores import DatastoreRef

# camelCase request field -> stored field; secrets go to the row's secrets, never to its config.
BLOB_FIELDS = {
    "containerName": "container",
    "accountName": "account_name",
    "endpoint": "endpoint",
    "credential": "credential",
    "linkExpiryInMinutes": "link_expiry_minutes",
    "flushSeconds": "flush_seconds",
    "retries": "retries",
}
BLOB_SECRETS = {"connectionString": "connection_string", "accountKey": "account_key", "sasToken": "sas_token"}
KNOWN = {"kind", "name", "default", "createContainer", "path", *BLOB_FIELDS, *BLOB_SECRETS}


def parse_datastore_document(document: object) -> tuple[str, dict, dict]:
    """(kind, config, secrets) of a create request, or a BatchAIError naming the field at fault."""
    if not isinstance(document, dict):
        raise BatchAIError("InvalidDatastore", "the request body must be a JSON object describing the datastore")
    unknown = sorted(set(document) - KNOWN)
    if unknown:
        raise BatchAIError("InvalidDatastore", f"{unknown[0]}: not a datastore field; use {', '.join(sorted(KNOWN))}")
    kind = document.get("kind", "blob" if "containerName" in document else "local")
    if kind == "local":
        path = document.get("path")
        if not isinstance(path, str) or not os.path.isabs(path) or not path.isprintable():
            raise BatchAIError(
                "InvalidDatastore",
                f"path: {path!r} is not valid; give the absolute path of a directory every node sees at that same path",
            )
        return "local", {"path": os.path.normpath(path)}, {}
    if kind != "blob":
        return str(kind), {}, {}
    config, secrets = {}, {}
    for field, stored in BLOB_FIELDS.items():
        if document.get(field) not in (None, ""):
            config[stored] = document[field]
    for field, stored in BLOB_SECRETS.items():
        value = document.get(field)
        if value not in (None, ""):
            if not isinstance(value, str):
                raise BatchAIError("InvalidDatastore", f"{field}: give a string")
            secrets[stored] = value
    endpoint = document.get("endpoint")
    if endpoint not in (None, "") and not (isinstance(endpoint, str) and endpoint.startswith(("https://", "http://"))):
        raise BatchAIError(
            "InvalidDatastore",
            f"endpoint: {endpoint!r} is not valid; give the account's Blob URL, "
            "https://<account>.blob.core.windows.net",
        )
    for field in ("linkExpiryInMinutes", "flushSeconds"):
        value = document.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise BatchAIError("InvalidDatastore", f"{field}: {value!r} is not valid; give a positive number")
    retries = document.get("retries")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10):
        raise BatchAIError("InvalidDatastore", f"retries: {retries!r} is not valid; give 0 to 10")
    if config.get("credential") not in (None, "default"):
        raise BatchAIError(
            "InvalidDatastore",
            f"credential: {config['credential']!r} is not valid; the only "
            'value is "default" (azure-identity\'s DefaultAzureCredential)',
        )
    return "blob", config, secrets


def datastore_view(row: DatastoreRef, transfers: dict | None = None) -> dict:
    """A datastore as the API shows it: its kind and public settings, never its secrets."""
    config = row.config
    view = {"name": row.name, "workspace": row.workspace, "kind": row.kind}
    # How specs name it (datastore://<name>/<path>); where its files are on the service's machine is never shown.
    view["location"] = f"datastore://{row.name}/"
    if row.kind != "local":
        for field, stored in BLOB_FIELDS.items():
            if stored in config:
                view[field] = config[stored]
        secrets = row.secrets or {}
        view["authentication"] = next(
            (field for field, stored in BLOB_SECRETS.items() if stored in secrets), "defaultCredential"
        )
    if transfers is not None:
        view["transfers"] = transfers
    return view
