"""What systemd's accounting properties do not carry, read from the unit's cgroup files.

On cgroup v2: `memory.events` (how often MemoryHigh throttled, MemoryMax was hit, the OOM killer
killed), `cpu.stat` (time throttled by CPUQuota) and PSI (`*.pressure`, avg10). On cgroup v1 the
nearest equivalents: `memory.oom_control` oom_kill, `memory.failcnt` and the cpu controller's
`cpu.stat`. A value this host does not have is None.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CGROUP = Path("/sys/fs/cgroup")
STAT_KEYS = ("memory_high_events", "memory_max_events", "oom_kills", "cpu_throttled_usec", "pressure_avg10")


def _keyed(path: Path) -> dict[str, int]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def _pressure_avg10(path: Path) -> float | None:
    try:
        some = path.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    fields = dict(f.split("=", 1) for f in some[1:] if "=" in f)
    return float(fields["avg10"]) if "avg10" in fields else None


def cgroup_stats(control_group: str, unified: bool | None) -> dict[str, Any]:
    rel = control_group.lstrip("/")
    if not rel or unified is None:
        return dict.fromkeys(STAT_KEYS)
    if unified:
        d = CGROUP / rel
        events = _keyed(d / "memory.events")
        cpu = _keyed(d / "cpu.stat")
        return {
            "memory_high_events": events.get("high"),
            "memory_max_events": events.get("max"),
            "oom_kills": events.get("oom_kill"),
            "cpu_throttled_usec": cpu.get("throttled_usec"),
            "pressure_avg10": {r: _pressure_avg10(d / f"{r}.pressure") for r in ("cpu", "memory", "io")},
        }
    mem = CGROUP / "memory" / rel
    cpu = _keyed(CGROUP / "cpu" / rel / "cpu.stat")
    failcnt = _keyed_single(mem / "memory.failcnt")
    throttled = cpu.get("throttled_time")
    return {
        "memory_high_events": None,
        "memory_max_events": failcnt,
        "oom_kills": _keyed(mem / "memory.oom_control").get("oom_kill"),
        "cpu_throttled_usec": throttled // 1000 if throttled is not None else None,
        "pressure_avg10": None,
    }


def _keyed_single(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
