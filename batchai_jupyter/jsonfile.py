"""Reading a user's JSON document (job.json, cluster.json, a native spec) with errors that say what to do,
and filling in the Batch AI CLI's placeholders."""
from __future__ import annotations

import json
import os

from .errors import BatchAIError

PLACEHOLDERS = {"<AZURE_BATCHAI_STORAGE_ACCOUNT>": "AZURE_BATCHAI_STORAGE_ACCOUNT",
                "<AZURE_BATCHAI_STORAGE_KEY>": "AZURE_BATCHAI_STORAGE_KEY"}


def read_json_object(path: str, option: str = "-f") -> dict:
    """The JSON object in `path`; a BatchAIError naming `option` and the file when it is missing or not one."""
    try:
        with open(path) as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise BatchAIError("FileNotFound",
                           f"{option} {path!r}: the file does not exist (relative to {os.getcwd()})") from None
    except ValueError as failure:
        raise BatchAIError("InvalidJson", f"{option} {path!r}: not valid JSON ({failure}); fix the file") from None
    if not isinstance(document, dict):
        raise BatchAIError("InvalidJson", f"{option} {path!r}: must hold a JSON object")
    return document


def fill_placeholders(value, env: dict) -> object:
    """The Batch AI CLI's <AZURE_BATCHAI_STORAGE_ACCOUNT> / <AZURE_BATCHAI_STORAGE_KEY>, from `env`."""
    if isinstance(value, dict):
        return {key: fill_placeholders(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_placeholders(item, env) for item in value]
    if isinstance(value, str):
        for placeholder, variable in PLACEHOLDERS.items():
            if placeholder in value and env.get(variable):
                value = value.replace(placeholder, env[variable])
    return value
