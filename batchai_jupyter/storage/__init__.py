"""Datastore kinds, registered by name under the entry-point group `batchai_jupyter.datastores`.

An entry point names a factory `factory(config: dict, context: DatastoreContext) -> Datastore`, where
`config` is the datastore's stored configuration (its secrets included: never log it).
"""
from __future__ import annotations

from importlib.metadata import entry_points

from ..errors import BatchAIError
from .base import Datastore, DatastoreContext

GROUP = "batchai_jupyter.datastores"


def datastore_factories() -> dict:
    factories = {point.name: point for point in entry_points(group=GROUP)}
    return factories


def open_datastore(kind: str, config: dict, context: DatastoreContext) -> Datastore:
    if kind == "local":  # always there, installed or not
        from .local import create

        return create(config, context)
    point = datastore_factories().get(kind)
    if point is None:
        raise BatchAIError("UnknownDatastoreKind", f"datastore kind {kind!r} is not installed here; "
                                                   f"use one of: {', '.join(sorted({'local', *datastore_factories()}))}")
    try:
        factory = point.load()
    except Exception as failure:
        raise BatchAIError("DatastoreUnavailable", f"datastore kind {kind!r} cannot be loaded here "
                                                   f"({type(failure).__name__}: {failure}); install its dependency")
    return factory(config, context)
