"""What this host is and what it can enforce: the answer to "will my limits hold here?"."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from berth.units.limits import V2_CONTROLLER, V2_ONLY, cgroup_unified, unenforced, v2_controllers

CGROUP = Path("/sys/fs/cgroup")


def host_info() -> dict[str, Any]:
    unified = cgroup_unified()
    if unified:
        mode, controllers = "unified (cgroup v2)", v2_controllers() or []
        not_enforced = sorted(w.split()[0] for w in unenforced(V2_CONTROLLER, True, controllers))
        pinning = "AllowedCPUs (cpuset)" if "cpuset" in controllers else "CPUAffinity (sched_setaffinity)"
    elif unified is False:
        mode = "hybrid (cgroup v1 controllers)" if (CGROUP / "unified").is_dir() else "legacy (cgroup v1)"
        controllers = sorted(
            p.name for p in CGROUP.iterdir() if p.is_dir() and p.name not in ("unified", "systemd")
        )
        not_enforced, pinning = sorted(V2_ONLY), "CPUAffinity (sched_setaffinity)"
    else:
        mode, controllers, not_enforced, pinning = "none visible", [], [], "CPUAffinity (sched_setaffinity)"
    with open("/proc/filesystems") as fh:
        overlay = any(line.split()[-1] == "overlay" for line in fh if line.strip())
    return {
        "cgroup_mode": mode,
        # v2: what the hierarchy's root offers (delegates) to units; v1: the mounted hierarchies
        "controllers": controllers,
        "enforced": sorted(p for p in V2_CONTROLLER if p not in not_enforced) if unified is not None else [],
        "not_enforced": not_enforced,
        "cpu_pinning": pinning,
        "oom_kill_reporting": "memory.events" if unified else "memory.oom_control",
        # PSI: per-cgroup cpu/memory/io.pressure files on v2 (the kernel may be built without it)
        "pressure_stall_info": unified is True and Path("/proc/pressure/cpu").exists(),
        "overlayfs": overlay,
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
    }
