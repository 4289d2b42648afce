"""Readings of a machine's load from what any Linux node has: /proc/stat, /proc/meminfo, and nvidia-smi
where it is installed. Nothing runs on the node but `LOAD_COMMAND` (cat, grep and nvidia-smi), within
a heartbeat the backend sends anyway; this side turns its output into a LoadSample."""

from __future__ import annotations

import time

from ..ports.compute import GpuUsage, LoadSample, Usage

GPU_QUERY = "nvidia-smi --query-gpu=index,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits"
# One line `cpu ...` (time spent by all cores since boot), MemTotal / MemAvailable, then a line per GPU.
LOAD_COMMAND = (
    "head -n 1 /proc/stat; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; "
    f"if command -v nvidia-smi >/dev/null 2>&1; then {GPU_QUERY} 2>/dev/null; fi; true"
)
MIB = 1 << 20

CpuTimes = tuple[int, int]  # (busy, total) jiffies since boot


def cpu_times(line: str) -> CpuTimes | None:
    """(busy, total) from /proc/stat's `cpu` line: idle and iowait are not busy; guest time is in user already."""
    fields = line.split()
    if not fields or fields[0] != "cpu":
        return None
    try:
        values = [int(value) for value in fields[1:9]]
    except ValueError:
        return None
    idle = sum(values[3:5])
    return sum(values) - idle, sum(values)


def cpu_percent(before: CpuTimes | None, after: CpuTimes | None) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round(100.0 * max(0, after[0] - before[0]) / (after[1] - before[1]), 1)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


def gpu_usage(lines: list[str]) -> tuple[GpuUsage, ...] | None:
    """nvidia-smi's CSV (index, utilization %, memory used MiB, memory total MiB); None without any GPU line."""
    gpus = []
    for line in lines:
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 4 or not fields[0].isdigit():
            continue
        used, total = _number(fields[2]), _number(fields[3])
        gpus.append(
            GpuUsage(
                index=int(fields[0]),
                utilization_percent=_number(fields[1]),
                memory_used_bytes=None if used is None else int(used * MIB),
                memory_total_bytes=None if total is None else int(total * MIB),
            )
        )
    return tuple(gpus) or None


def read_host(output: str, before: CpuTimes | None) -> tuple[LoadSample, CpuTimes | None]:
    """The sample `LOAD_COMMAND`'s output gives, with CPU use since `before` (the last reading's
    times; None on the first, whose CPU is unknown), and the times to pass next time."""
    lines = output.splitlines()
    now = next((times for times in map(cpu_times, lines) if times), None)
    memory = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("MemTotal", "MemAvailable") and rest.split() and rest.split()[0].isdigit():
            memory[name] = int(rest.split()[0]) * 1024  # kB
    total = memory.get("MemTotal")
    available = memory.get("MemAvailable")
    usage = Usage(
        cpu_percent=cpu_percent(before, now),
        memory_used_bytes=None if total is None or available is None else total - available,
        memory_total_bytes=total,
    )
    return LoadSample(sampled=time.time(), scope="node", usage=usage, gpus=gpu_usage(lines)), now
