"""What runs on nodes: the job wrapper, the cell runner, and helpers a job's script calls."""

from .metrics import log_metric
from .params import params

__all__ = ["log_metric", "params"]
