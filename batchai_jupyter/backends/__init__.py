"""Compute backends, registered by name under the entry-point group `batchai_jupyter.backends`.

An entry point names a factory `factory(context: BackendContext) -> Backend` (ports/compute.py: the
backend's class declares which capabilities it has by inheriting them). A backend whose
module cannot be imported here (a missing optional dependency) is not offered, and creating a
cluster on it says why.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from ..ports.compute import Backend, BackendContext

GROUP = "batchai_jupyter.backends"
log = logging.getLogger("batchai_jupyter")


def load_backends(context: BackendContext) -> tuple[dict[str, Backend], dict[str, str]]:
    """The backends that load, by name, and for those that do not, why."""
    loaded: dict[str, Backend] = {}
    unavailable: dict[str, str] = {}
    for point in entry_points(group=GROUP):
        try:
            loaded[point.name] = point.load()(context.for_backend(point.name))
        except Exception as failure:  # an optional backend missing its dependency must not stop the service
            unavailable[point.name] = f"{type(failure).__name__}: {failure}"
            log.warning("batchai: backend %r is not available: %s", point.name, unavailable[point.name])
    if "local" not in loaded:  # running from a source tree that was never installed
        from .local import create

        loaded["local"] = create(context.for_backend("local"))
    return loaded, unavailable
