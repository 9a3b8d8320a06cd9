"""How many CPUs this process may really use: the smaller of its affinity mask and its container's CPU quota.

On a Kubernetes node the affinity mask is every host CPU (96 on a large GPU node) while the pod's CPU limit, the
cgroup quota, may be 8; sizing the worker pool from the mask would start 96 processes that share 8 CPUs. The
quota is read from cgroup v2 (`cpu.max`: "<quota> <period>" or "max <period>") or v1 (`cpu.cfs_quota_us` and
`cpu.cfs_period_us`, -1 for none); a fractional quota rounds up (1.5 CPUs lets two processes run).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def affinity_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def quota_cpus(root: Path = CGROUP_ROOT) -> float | None:
    """The container's CPU quota in CPUs, or None when there is none (or no cgroup filesystem)."""
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        parts = v2.split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                quota, period = int(parts[0]), int(parts[1])
            except ValueError:
                return None
            return quota / period if quota > 0 and period > 0 else None
        return None
    quota_text, period_text = _read(root / "cpu" / "cpu.cfs_quota_us"), _read(root / "cpu" / "cpu.cfs_period_us")
    if quota_text is None or period_text is None:
        quota_text, period_text = _read(root / "cpu.cfs_quota_us"), _read(root / "cpu.cfs_period_us")
    try:
        quota, period = int(quota_text or "-1"), int(period_text or "0")
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """CPUs this process can use at once: min(affinity, ceil(quota)), at least 1."""
    cpus = affinity_cpus()
    quota = quota_cpus(root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota - 1e-9))
    return max(1, cpus)
