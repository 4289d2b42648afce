"""The composition root: the one module that knows the core, the compute backends, the datastore kinds and
the run trackers, and puts a Service together from them. The server extension, `batchai serve` (through it)
and tests that want a Service in-process call `build_service`.
"""

from __future__ import annotations

from .backends import load_backends
from .core import launch, models
from .core.service import Service, Settings
from .ports.compute import BackendContext
from .ports.layout import HomeLayout
from .storage import StorageKinds
from .tracking import load_trackers

# The task planner, shipped as source to where a scheduler backend plans a gang's tasks (Slurm's driver).
PLANNER_FILES = {"batchai_launch/launch.py": launch.__file__, "batchai_launch/models.py": models.__file__}


def build_service(settings: Settings) -> Service:
    """A Service with every installed backend (those that cannot load are named, with why) and datastore kind."""
    context = BackendContext(
        HomeLayout(settings.home), settings.heartbeat_seconds, settings.backend_options, planner_files=PLANNER_FILES
    )
    backends, unavailable = load_backends(context)
    return Service(settings, backends, StorageKinds(), unavailable, load_trackers(settings.mlflow_tracking_uri))
