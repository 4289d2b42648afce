"""Symbolic locations of data: `datastore://<name>/<path>`, a folder or file inside a workspace's datastore.

Clients and specs name data this way, never by a path on the service's machine; each backend resolves a
location to what its nodes see (the datastore's `node_path`, then the backend's own mapping: local nodes
read it there, SSH nodes get it staged into their mirror, Slurm nodes see it on the shared file system).
A spec may still give the Batch AI forms (`$AZ_BATCHAI_JOB_MOUNT_ROOT/...`, resolved on each node) or an
absolute path, which old recipes and local use rely on.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from ..errors import SpecError
from .names import MAX_NAME_LENGTH, NAME_PATTERN

SCHEME = "datastore"
PREFIX = f"{SCHEME}://"
_ANY_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
FORMS = (
    "datastore://<datastore name>/<path inside it>, a $AZ_BATCHAI_MOUNT_ROOT or $AZ_BATCHAI_JOB_MOUNT_ROOT "
    "path, or an absolute path"
)


@dataclass(frozen=True)
class Location:
    datastore: str
    path: str  # relative to the datastore's root, normalised; "" is the root itself

    def __str__(self) -> str:
        return f"{PREFIX}{self.datastore}/{self.path}"


def is_uri(text: str) -> bool:
    """Whether `text` starts with a scheme (`anything://`): a location, or a mistaken one."""
    return bool(_ANY_URI.match(text))


def parse_location(text: str, where: str) -> Location:
    """The location `text` names; a SpecError at `where` when it is not a valid `datastore://` URI."""
    if not text.startswith(PREFIX):
        scheme = text.split("://", 1)[0]
        raise SpecError(where, text, f"{scheme}:// locations are not known here; give {FORMS}", code="InvalidLocation")
    name, _, path = text[len(PREFIX) :].partition("/")
    if not (1 <= len(name) <= MAX_NAME_LENGTH and NAME_PATTERN.fullmatch(name)):
        raise SpecError(
            where,
            text,
            "the datastore's name comes right after datastore:// (1-64 ASCII letters, "
            "digits, '-' and '_'), as in datastore://default/data",
            code="InvalidLocation",
        )
    normal = posixpath.normpath(path.replace("\\", "/") or ".")
    if normal == ".." or normal.startswith("../") or normal.startswith("/"):
        raise SpecError(
            where,
            text,
            f"the path points outside datastore '{name}'; give a path inside it, without '..'",
            code="InvalidLocation",
        )
    return Location(name, "" if normal == "." else normal)


def parse_data_path(text: str, where: str) -> str:
    """A data path as a spec gives it: a `datastore://` location in its normal form, or any other path
    unchanged (Batch AI's forms and absolute paths); a SpecError for a URI that is not a location."""
    return str(parse_location(text, where)) if is_uri(text) else text


def location_of(text: str) -> Location | None:
    """The location a stored (already checked) data path names, or None for a plain path."""
    return parse_location(text, "path") if text.startswith(PREFIX) else None
