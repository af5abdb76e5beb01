"""Refuse to boot a lab where it would be unsafe or could not work, before touching anything."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from berth.errors import PermissionDenied, Unsupported
from berth.kernel import statfs_type

SYSTEMD = Path("/usr/lib/systemd/systemd")
REQUIRED_TOOLS = ("unshare", "nsenter", "mount", "umount", "pivot_root", "ip", "ssh-keygen", "stat")


def check_machine(state_root: Path) -> None:
    if os.geteuid() != 0:
        raise PermissionDenied("berth lab needs root: it creates namespaces, mounts and links")
    if not SYSTEMD.is_file() or not os.access(SYSTEMD, os.X_OK):
        raise Unsupported(f"no systemd binary at {SYSTEMD}: install the systemd package")
    if not Path("/usr/sbin/sshd").is_file():
        raise Unsupported("no sshd at /usr/sbin/sshd: install openssh-server")
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise Unsupported(f"missing tools: {', '.join(missing)} (util-linux, iproute2, openssh-client)")
    with open("/proc/filesystems") as fh:
        if not any(line.split()[-1] == "overlay" for line in fh if line.strip()):
            raise Unsupported("the kernel has no overlay filesystem (modprobe overlay?)")
    if not Path("/proc/self/ns/cgroup").exists():
        raise Unsupported("the kernel has no cgroup namespaces")
    state_root.mkdir(parents=True, exist_ok=True)
    fstype = statfs_type(state_root)
    if fstype == "overlayfs":
        raise Unsupported(
            f"lab state dir {state_root} is on {fstype}: host disks cannot live there;"
            " set BERTH_LAB_STATE_DIR to a directory on a real filesystem"
        )
