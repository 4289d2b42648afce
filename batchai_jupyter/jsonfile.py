"""Reading a user's JSON document (job.json, cluster.json, a native spec) with errors that say what to do,
and filling in the Batch AI CLI's placeholders."""

from __future__ import annotations

import json
import math
import os

from .errors import BatchAIError

PLACEHOLDERS = {
    "<AZURE_BATCHAI_STORAGE_ACCOUNT>": "AZURE_BATCHAI_STORAGE_ACCOUNT",
    "<AZURE_BATCHAI_STORAGE_KEY>": "AZURE_BATCHAI_STORAGE_KEY",
}


# Deeper than any spec needs; code that walks a document recursively stays far from Python's stack limit.
MAX_JSON_DEPTH = 64


def read_json_object(path: str, option: str = "-f") -> dict:
    """The JSON object in `path`; a BatchAIError naming `option` and the file when it is missing or not one."""
    try:
        with open(path) as handle:
            document = json.load(handle, **FINITE_NUMBERS)
    except FileNotFoundError:
        raise BatchAIError(
            "FileNotFound", f"{option} {path!r}: the file does not exist (relative to {os.getcwd()})"
        ) from None
    except OSError as failure:
        raise BatchAIError("FileUnreadable", f"{option} {path!r}: cannot be read ({failure.strerror})") from None
    except RecursionError:
        raise BatchAIError(
            "InvalidJson", f"{option} {path!r}: nested too deeply to read; a spec nests at most {MAX_JSON_DEPTH} levels"
        ) from None
    except ValueError as failure:
        raise BatchAIError("InvalidJson", f"{option} {path!r}: not valid JSON ({failure}); fix the file") from None
    if not isinstance(document, dict):
        raise BatchAIError("InvalidJson", f"{option} {path!r}: must hold a JSON object")
    if nesting_depth(document) > MAX_JSON_DEPTH:
        raise BatchAIError("InvalidJson", f"{option} {path!r}: nested more than {MAX_JSON_DEPTH} levels deep")
    return document


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number; write a finite number or a string")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"{text[:40]} is too large for a number; write a smaller one or a string")
    return number


# json.load(s) arguments that refuse NaN, Infinity and floats too large to be finite (1e400), which Python
# would read but no JSON encoder may write back.
FINITE_NUMBERS: dict = {"parse_constant": _no_constant, "parse_float": _finite_float}


def nesting_depth(document: object) -> int:
    """How deep lists and objects nest in `document`, found without recursion."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (value.values() if isinstance(value, dict) else value))
    return deepest


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
