"""Limits a host cannot enforce, so `apply` can say so instead of pretending.

On cgroup v1 (legacy or hybrid layout, as on our test hosts) systemd applies MemoryMax, CPUQuota,
CPUWeight, TasksMax and IOWeight through the v1 controllers, but silently ignores the properties
in V2_ONLY, which exist only on the unified (v2) hierarchy.

On cgroup v2 every property is enforced by one controller, and only if the root of the host's
hierarchy offers it (`cgroup.controllers`: all of them on a machine, what the parent delegated in
a container or a delegated subtree). A property whose controller is missing is silently ignored
by systemd too, so it is reported the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")

V2_ONLY = {
    "MemoryHigh": "",
    "MemoryLow": "",
    "MemoryMin": "",
    "MemorySwapMax": "",
    "AllowedCPUs": "; pin CPUs with CPUAffinity instead",
    "AllowedMemoryNodes": "",
    # systemd turns IO*BandwidthMax into blkio throttles on v1, but IOPS limits only into v2's io.max
    "IOReadIOPSMax": "; limit bandwidth instead (IOReadBandwidthMax)",
    "IOWriteIOPSMax": "; limit bandwidth instead (IOWriteBandwidthMax)",
}

# On cgroup v2: the controller that enforces each resource property berth sets.
V2_CONTROLLER = {
    "MemoryMax": "memory",
    "MemoryHigh": "memory",
    "MemoryLow": "memory",
    "MemoryMin": "memory",
    "MemorySwapMax": "memory",
    "CPUQuotaPerSecUSec": "cpu",
    "CPUWeight": "cpu",
    "AllowedCPUs": "cpuset",
    "AllowedMemoryNodes": "cpuset",
    "TasksMax": "pids",
    "IOWeight": "io",
    "IOReadBandwidthMax": "io",
    "IOWriteBandwidthMax": "io",
    "IOReadIOPSMax": "io",
    "IOWriteIOPSMax": "io",
}


def cgroup_unified(root: Path = CGROUP_ROOT) -> bool | None:
    """True on cgroup v2, False on v1 (legacy/hybrid), None when no cgroupfs is visible."""
    if (root / "cgroup.controllers").exists():
        return True
    if (root / "memory").is_dir() or (root / "pids").is_dir():
        return False
    return None


def v2_controllers(root: Path = CGROUP_ROOT) -> list[str] | None:
    """On cgroup v2: the controllers this host's hierarchy offers its units (None: not v2)."""
    try:
        return (root / "cgroup.controllers").read_text().split()
    except OSError:
        return None


def cpuset_available(unified: bool | None, root: Path = CGROUP_ROOT) -> bool:
    """Whether AllowedCPUs/AllowedMemoryNodes can bind here (else pin with CPUAffinity)."""
    if unified is False:
        return False
    controllers = v2_controllers(root)
    return controllers is None or "cpuset" in controllers  # unknown: let systemd try


def unenforced(
    properties: Iterable[str], unified: bool | None, controllers: Iterable[str] | None = None
) -> list[str]:
    """Warnings for the `properties` that a host with this cgroup layout will not enforce.

    `controllers`: on v2, the controllers the host's hierarchy offers (default: read them).
    """
    names = list(properties)
    if unified is None:
        return []
    if unified is False:
        return [
            f"{name} is not enforced on this host: it has cgroup v1 hierarchies and systemd "
            f"applies {name} only on cgroup v2{hint}"
            for name, hint in V2_ONLY.items()
            if name in names
        ]
    offered = list(controllers) if controllers is not None else v2_controllers()
    if offered is None:
        return []
    return [
        f"{name} is not enforced on this host: its cgroup v2 hierarchy does not offer the "
        f"{V2_CONTROLLER[name]} controller (not enabled, or not delegated to this host's systemd)"
        for name in names
        if name in V2_CONTROLLER and V2_CONTROLLER[name] not in offered
    ]
