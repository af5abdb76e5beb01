"""Facts about the host the runtime runs on."""

from __future__ import annotations

import os


def boot_identity() -> str:
    """Changes at every boot of this host, including a `berth lab reboot` of a namespace host.

    The kernel's boot_id alone is shared by every namespace-booted host of a machine; the start
    time of PID 1 tells their boots apart, and on a real host it is constant during a boot.
    """
    with open("/proc/sys/kernel/random/boot_id") as fh:
        boot_id = fh.read().strip()
    return f"{boot_id}:{process_start(1)}"


def process_start(pid: int) -> str | None:
    """When process `pid` started, in clock ticks after boot (field 22 of /proc/PID/stat).

    With the PID it names one process for the whole boot: a PID reused later has another start
    time. None: no such process (as this PID namespace sees it).
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    return stat[stat.rindex(b")") + 2 :].split()[19].decode()


def pid_namespace() -> str:
    """This process's PID namespace ("pid:[INODE]"): PIDs mean something only within one."""
    return os.readlink("/proc/self/ns/pid")
