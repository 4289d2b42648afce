"""A node's `load` (GET .../nodes) as short texts for tables: the CLI's and the monitors'. A value the
service does not know (no sample yet, a backend that reads none, no GPU) is shown as "-"."""

from __future__ import annotations

from typing import Any

UNKNOWN = "-"


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.1f}"


def _size(size: int) -> str:
    return f"{_gib(size)} GiB" if size >= 1 << 30 else f"{size / (1 << 20):.0f} MiB"


def _memory(used: int | None, total: int | None) -> str:
    if used is None or total is None:
        return UNKNOWN
    return f"{_gib(used)}/{_gib(total)} GiB"


def _percent(value: float | None) -> str:
    return UNKNOWN if value is None else f"{value:.0f}%"


def cpu_text(node: dict[str, Any]) -> str:
    """The node's CPU use; for nodes sharing one machine that of its tasks, then the machine's."""
    load = node.get("load")
    if not load:
        return UNKNOWN
    text = _percent(load.get("cpuPercent"))
    machine = load.get("machine")
    return f"{text} (machine {_percent(machine.get('cpuPercent'))})" if machine else text


def memory_text(node: dict[str, Any]) -> str:
    load = node.get("load")
    if not load:
        return UNKNOWN
    machine = load.get("machine")
    if not machine:
        return _memory(load.get("memoryUsedBytes"), load.get("memoryTotalBytes"))
    used = load.get("memoryUsedBytes")  # the tasks': then what the whole machine uses of its total
    shared = _memory(machine.get("memoryUsedBytes"), machine.get("memoryTotalBytes"))
    return f"{UNKNOWN if used is None else _size(used)} (machine {shared})"


def gpu_text(node: dict[str, Any]) -> str:
    """Each GPU's utilisation and memory: `0: 45% 10.0/80.0 GiB`."""
    gpus = (node.get("load") or {}).get("gpus")
    if not gpus:
        return UNKNOWN
    return ", ".join(
        f"{gpu['index']}: {_percent(gpu.get('utilizationPercent'))} "
        f"{_memory(gpu.get('memoryUsedBytes'), gpu.get('memoryTotalBytes'))}"
        for gpu in gpus
    )
