"""The Azure backend (`pip install batchai-jupyter[azure]`): clusters of Azure VMs, one VM Scale Set
each, with jobs run on the VMs over SSH (backend.py says how)."""

from __future__ import annotations

from ...ports.compute import BackendContext
from .backend import AzureBackend


def create(context: BackendContext) -> AzureBackend:
    return AzureBackend(context)
