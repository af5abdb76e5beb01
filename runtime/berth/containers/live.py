"""Changing a running container's process attributes that systemd sets only at exec time.

SetUnitProperties changes cgroup limits of a running unit, but CPUAffinity and Nice are
applied once, when systemd starts the process; to change them live they are applied to every
task of the unit's cgroup directly.
"""

from __future__ import annotations

import os
from typing import Any

from berth.systemd.sync import Systemd
from berth.units.observe import live_state

EXEC_ONLY = frozenset({"CPUAffinity", "Nice"})


def _tasks(control_group: str) -> list[int]:
    for base in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        path = os.path.join(base, control_group.lstrip("/"), "cgroup.threads")
        if not os.path.exists(path):
            path = os.path.join(base, control_group.lstrip("/"), "tasks")
        try:
            with open(path) as fh:
                return [int(t) for t in fh.read().split()]
        except FileNotFoundError:
            continue
    return []


def apply_exec_properties(systemd: Systemd, unit: str, props: dict[str, Any]) -> None:
    if not props:
        return
    group = live_state(systemd, unit).control_group
    if not group:
        return
    for tid in _tasks(group):
        try:
            if "CPUAffinity" in props:
                os.sched_setaffinity(tid, props["CPUAffinity"])
            if "Nice" in props:
                os.setpriority(os.PRIO_PROCESS, tid, int(props["Nice"]))
        except ProcessLookupError:
            continue  # the task exited meanwhile
