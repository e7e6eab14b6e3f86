"""What the machine that runs the encoder offers: the CPUs this process may use (affinity and cgroup quota)
and the instruction sets that make reduced precisions fast.

Runs inside Triton's python backend (copied beside the encoder's `model.py`) and in `crossrank export`, so
thread counts and precision choices follow the machine that serves, never the one that exported.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

# Flags in /proc/cpuinfo under which bf16 matrix products run in hardware (AMX tiles or AVX-512 BF16).
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The instruction-set flags of the first CPU listed (all cores of one machine share them)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_bf16(flags: frozenset[str]) -> bool:
    return any(flag in flags for flag in BF16_FLAGS)


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup quota (v2 `cpu.max`, else v1 `cpu.cfs_quota_us`), or None for no quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def available_cpus(affinity: set[int] | None = None, quota: float | None = None,
                   root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may run on: its affinity mask, capped by the cgroup quota (rounded up, at least 1).

    `os.cpu_count()` counts the host's cores, which in a container with a CPU limit oversubscribes the
    quota and makes every thread wait on throttling.
    """
    cpus = len(affinity if affinity is not None else os.sched_getaffinity(0))
    limit = quota if quota is not None else cgroup_cpu_limit(root)
    if limit is not None and limit > 0:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def threads_per_instance(setting: str | int, instances: int, cpus: int | None = None) -> int:
    """Threads for one encoder instance: an explicit count as it is; `auto` / 0 shares the available CPUs
    between the instances."""
    explicit = int(setting) if str(setting).isdigit() else 0
    if explicit > 0:
        return explicit
    return max(1, (cpus if cpus is not None else available_cpus()) // max(1, instances))
