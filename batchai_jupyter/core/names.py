"""Resource names: workspace, cluster, experiment, job, file server (Batch AI's rule)."""

from __future__ import annotations

import re

from ..errors import SpecError

# Batch AI's `^[-\w_]+$`, restricted to ASCII word characters.
NAME_PATTERN = re.compile(r"^[-\w_]+$", re.ASCII)
MAX_NAME_LENGTH = 64
# ARM's rule for resource group names.
RESOURCE_GROUP_NAME = re.compile(r"^[-\w._()]{1,90}$")


def validate_name(kind: str, value: object, path: str) -> str:
    """`value` when it is a valid `kind` name (job, cluster, ...), else a SpecError at `path`."""
    if isinstance(value, str) and 1 <= len(value) <= MAX_NAME_LENGTH and NAME_PATTERN.fullmatch(value):
        return value
    raise SpecError(
        path,
        value,
        f"{kind} names are 1-{MAX_NAME_LENGTH} characters of ASCII letters, digits, '-' and '_'",
        code="InvalidName",
    )


def validate_resource_group(value: object, path: str) -> str:
    if isinstance(value, str) and RESOURCE_GROUP_NAME.match(value):
        return value
    raise SpecError(
        path, value, "resource group names are 1-90 letters, digits, '-', '_', '.', '(', ')'", code="InvalidName"
    )
