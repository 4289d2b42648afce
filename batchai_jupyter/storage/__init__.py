"""Datastore kinds, registered by name under the entry-point group `batchai_jupyter.datastores`.

An entry point names a factory `factory(config: dict, context: DatastoreContext) -> Datastore`, where
`config` is the datastore's stored configuration (its secrets included: never log it). `StorageKinds`
is what the service is given to open them (ports/datastores.py: DatastoreKinds).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from ..errors import BatchAIError
from ..ports.datastores import Datastore, DatastoreContext, DatastoreKinds, DatastoreRef, JobStorage
from ..ports.layout import HomeLayout
from .documents import datastore_view, parse_datastore_document
from .jobdata import JobData

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
        kinds = ", ".join(sorted({"local", *datastore_factories()}))
        raise BatchAIError(
            "UnknownDatastoreKind", f"datastore kind {kind!r} is not installed here; use one of: {kinds}"
        )
    try:
        factory = point.load()
    except Exception as failure:
        raise BatchAIError(
            "DatastoreUnavailable",
            f"datastore kind {kind!r} cannot be loaded here "
            f"({type(failure).__name__}: {failure}); install its "
            "dependency",
        ) from None
    return factory(config, context)


class StorageKinds(DatastoreKinds):
    """The installed datastore kinds, their documents, and the job data that moves through them."""

    def open(self, kind: str, config: dict[str, Any], context: DatastoreContext) -> Datastore:
        return open_datastore(kind, config, context)

    def parse_document(self, document: object) -> tuple[str, dict[str, Any], dict[str, Any]]:
        return parse_datastore_document(document)

    def view(self, row: DatastoreRef, transfers: dict[str, Any] | None = None) -> dict[str, Any]:
        return datastore_view(row, transfers)

    def job_storage(self, store: Any, layout: HomeLayout, datastore_for: Callable[..., Datastore]) -> JobStorage:
        return JobData(store, layout, datastore_for)
