"""Live views of jobs and clusters, built from standard ipywidgets only."""

from .cluster_monitor import ClusterMonitor
from .job_monitor import JobMonitor

__all__ = ["ClusterMonitor", "JobMonitor"]
