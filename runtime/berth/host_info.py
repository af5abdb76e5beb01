"""What this host is and what it can enforce: the answer to "will my limits hold here?"."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from berth.units.limits import V2_ONLY, cgroup_unified

CGROUP = Path("/sys/fs/cgroup")


def _v2_controllers() -> list[str]:
    for path in (CGROUP / "cgroup.controllers", CGROUP / "unified" / "cgroup.controllers"):
        try:
            return path.read_text().split()
        except OSError:
            continue
    return []


def host_info() -> dict[str, Any]:
    unified = cgroup_unified()
    if unified:
        mode, controllers = "unified (cgroup v2)", _v2_controllers()
    elif unified is False:
        mode = "hybrid (cgroup v1 controllers)" if (CGROUP / "unified").is_dir() else "legacy (cgroup v1)"
        controllers = sorted(
            p.name for p in CGROUP.iterdir() if p.is_dir() and p.name not in ("unified", "systemd")
        )
    else:
        mode, controllers = "none visible", []
    with open("/proc/filesystems") as fh:
        overlay = any(line.split()[-1] == "overlay" for line in fh if line.strip())
    return {
        "cgroup_mode": mode,
        "controllers": controllers,
        "not_enforced": sorted(V2_ONLY) if unified is False else [],
        "cpu_pinning": "AllowedCPUs (cpuset)" if unified else "CPUAffinity (sched_setaffinity)",
        "oom_kill_reporting": "memory.events" if unified else "memory.oom_control",
        "overlayfs": overlay,
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
    }
