"""Reading a host's load from what LOAD_COMMAND prints: /proc/stat, /proc/meminfo and nvidia-smi's CSV.
The SSH tests read real hosts; these cover what those hosts do not have (GPUs, fields nvidia-smi cannot
read) and what is unknown (the first reading, a host without /proc)."""

from __future__ import annotations

import subprocess

from batchai_jupyter.backends.load_readings import LOAD_COMMAND, read_host
from batchai_jupyter.ports.compute import GpuUsage

MEMINFO = "MemTotal:       16384000 kB\nMemAvailable:    4096000 kB\n"


def test_cpu_is_the_busy_share_between_two_readings():
    first, times = read_host("cpu  100 0 100 700 100 0 0 0 0 0\n" + MEMINFO, None)
    assert first.usage.cpu_percent is None  # nothing to measure against yet
    second, _ = read_host("cpu  250 0 150 800 100 0 0 0 0 0\n" + MEMINFO, times)
    assert second.usage.cpu_percent == 66.7  # 200 busy of 300 jiffies; iowait counts as idle
    assert second.usage.memory_total_bytes == 16384000 * 1024
    assert second.usage.memory_used_bytes == (16384000 - 4096000) * 1024
    assert second.scope == "node" and second.gpus is None


def test_gpus_from_nvidia_smi_with_fields_it_cannot_read():
    output = "cpu  1 0 1 8 0 0 0 0 0 0\n" + MEMINFO + "0, 87, 40960, 81559\n1, [N/A], [N/A], 81559\n"
    sample, _ = read_host(output, None)
    assert sample.gpus == (
        GpuUsage(0, 87.0, 40960 << 20, 81559 << 20),
        GpuUsage(1, None, None, 81559 << 20),
    )


def test_a_host_without_proc_reports_nothing_known():
    sample, times = read_host("head: cannot open '/proc/stat'\n", None)
    assert times is None and sample.gpus is None
    assert (sample.usage.cpu_percent, sample.usage.memory_used_bytes, sample.usage.memory_total_bytes) == (None,) * 3


def test_the_command_reads_this_machine():
    output = subprocess.run(["sh", "-c", LOAD_COMMAND], capture_output=True, text=True, check=True).stdout
    sample, times = read_host(output, None)
    assert times is not None and 0 < sample.usage.memory_used_bytes < sample.usage.memory_total_bytes
