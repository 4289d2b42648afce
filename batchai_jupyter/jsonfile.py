"""Reading a user's JSON document (job.json, cluster.json, a native spec) with errors that say what to do."""
from __future__ import annotations

import json
import os

from .errors import BatchAIError


def read_json_object(path: str, option: str = "-f") -> dict:
    """The JSON object in `path`; a BatchAIError naming `option` and the file when it is missing or not one."""
    try:
        with open(path) as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise BatchAIError("FileNotFound", f"{option} {path!r}: the file does not exist (relative to {os.getcwd()})")
    except ValueError as failure:
        raise BatchAIError("InvalidJson", f"{option} {path!r}: not valid JSON ({failure}); fix the file")
    if not isinstance(document, dict):
        raise BatchAIError("InvalidJson", f"{option} {path!r}: must hold a JSON object")
    return document
