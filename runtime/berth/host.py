"""Facts about the host the runtime runs on."""

from __future__ import annotations


def boot_identity() -> str:
    """Changes at every boot of this host, including a `berth lab reboot` of a namespace host.

    The kernel's boot_id alone is shared by every namespace-booted host of a machine; the start
    time of PID 1 tells their boots apart, and on a real host it is constant during a boot.
    """
    with open("/proc/sys/kernel/random/boot_id") as fh:
        boot_id = fh.read().strip()
    with open("/proc/1/stat", "rb") as fh:
        stat = fh.read()
    pid1_start = stat[stat.rindex(b")") + 2 :].split()[19].decode()
    return f"{boot_id}:{pid1_start}"
