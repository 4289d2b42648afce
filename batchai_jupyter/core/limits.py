"""Bounds on every count and size in a job or cluster spec, checked in one linear walk before the spec is
read, so that no request can make the service parse, store or start something unbounded."""

from __future__ import annotations

from typing import Any

from ..errors import BatchAIError

MAX_DEPTH = 32
# Linux refuses to start a process whose environment and arguments exceed ARG_MAX (2 MiB by default) or
# one string over 128 KiB, so a job's variables and commands stay well inside both.
MAX_STRING_CHARS = 100_000
MAX_VARIABLE_CHARS = 1_000_000
MAX_ITEMS = 1000
MAX_ITEMS_BY_KEY = {
    "environmentVariables": 1000,
    "secrets": 256,
    "inputDirectories": 100,
    "outputDirectories": 100,
    "azureFileShares": 32,
    "azureBlobFileSystems": 32,
    "fileServers": 32,
    "unmanagedFileSystems": 32,
}
_VARIABLE_KEYS = ("environmentVariables", "secrets")


class SpecTooLarge(BatchAIError):
    def __init__(self, path: str, problem: str):
        super().__init__("SpecTooLarge", f"{path or '(document)'}: {problem}")


def check_spec_limits(document: Any) -> None:
    """SpecTooLarge naming the first count, length or depth out of bounds. Iterative, so a deeply nested
    document is refused rather than overflowing the stack."""
    stack: list[tuple[Any, str, str, int]] = [(document, "", "", 0)]
    variable_chars = 0
    while stack:
        value, path, key, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SpecTooLarge(path, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, str):
            if len(value) > MAX_STRING_CHARS:
                raise SpecTooLarge(path, f"{len(value)} characters; at most {MAX_STRING_CHARS}")
            continue
        if not isinstance(value, (dict, list)):
            continue
        limit = MAX_ITEMS_BY_KEY.get(key, MAX_ITEMS)
        if len(value) > limit:
            raise SpecTooLarge(path, f"{len(value)} entries; at most {limit}")
        if key in _VARIABLE_KEYS:
            variable_chars += _characters(value)
            if variable_chars > MAX_VARIABLE_CHARS:
                raise SpecTooLarge(
                    path, f"environment variables and secrets add up to more than {MAX_VARIABLE_CHARS} characters"
                )
        children = value.items() if isinstance(value, dict) else enumerate(value)
        for child_key, child in children:
            if isinstance(value, dict) and len(str(child_key)) > MAX_STRING_CHARS:
                raise SpecTooLarge(path, f"a key of {len(str(child_key))} characters; at most {MAX_STRING_CHARS}")
            child_path = (
                (f"{path}.{child_key}" if path else str(child_key))
                if isinstance(value, dict)
                else f"{path}[{child_key}]"
            )
            stack.append((child, child_path, str(child_key) if isinstance(value, dict) else "", depth + 1))


def _characters(variables: dict[str, Any] | list[Any]) -> int:
    """The characters of a variable list's names and values, as a process's environment would hold them."""
    pairs: list[tuple[object, object]]
    if isinstance(variables, dict):
        pairs = list(variables.items())
    else:
        pairs = [(item.get("name"), item.get("value")) for item in variables if isinstance(item, dict)]
    return sum(len(part) for pair in pairs for part in pair if isinstance(part, str))
