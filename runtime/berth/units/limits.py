"""Limits a host cannot enforce, so `apply` can say so instead of pretending.

On cgroup v1 (legacy or hybrid layout, as on our test hosts) systemd applies MemoryMax, CPUQuota,
CPUWeight, TasksMax and IOWeight through the v1 controllers, but silently ignores the properties
below, which exist only on the unified (v2) hierarchy.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

V2_ONLY = {
    "MemoryHigh": "",
    "MemoryLow": "",
    "MemoryMin": "",
    "MemorySwapMax": "",
    "AllowedCPUs": "; pin CPUs with CPUAffinity instead",
    "AllowedMemoryNodes": "",
}


def cgroup_unified(root: Path = Path("/sys/fs/cgroup")) -> bool | None:
    """True on cgroup v2, False on v1 (legacy/hybrid), None when no cgroupfs is visible."""
    if (root / "cgroup.controllers").exists():
        return True
    if (root / "memory").is_dir() or (root / "pids").is_dir():
        return False
    return None


def unenforced(properties: Iterable[str], unified: bool | None) -> list[str]:
    """Warnings for the `properties` that a host with this cgroup layout will not enforce."""
    if unified is not False:
        return []
    return [
        f"{name} is not enforced on this host: it has cgroup v1 hierarchies and systemd "
        f"applies {name} only on cgroup v2{hint}"
        for name, hint in V2_ONLY.items()
        if name in properties
    ]
