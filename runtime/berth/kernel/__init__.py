"""The one seam between Berth and the Linux kernel's namespace, mount and filesystem calls.

Python 3.11's standard library lacks `os.unshare`/`os.setns` (added in 3.12), `mount`,
`umount2`, `pivot_root` and `statfs`; these go through libc with ctypes, here and nowhere else,
so that the rest of the runtime stays testable and the risky calls stay few and visible.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import cache

# Namespace flags (linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# statfs f_type magic numbers (linux/magic.h) of the filesystems Berth cares about.
FS_MAGIC = {
    0x794C7630: "overlayfs",
    0x01021994: "tmpfs",
    0xEF53: "ext4",
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0x63677270: "cgroup2",
    0x27E0EB: "cgroup",
}


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


class _StatFs(ctypes.Structure):
    # struct statfs on 64-bit Linux: f_type first, 120 bytes in all.
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 112)]


def statfs_type(path: str | os.PathLike[str]) -> str:
    """The filesystem type of `path` ("overlayfs", "ext4", ... or "0x<magic>")."""
    buf = _StatFs()
    _check(_libc().statfs(os.fsencode(path), ctypes.byref(buf)), f"statfs {path}")
    magic = buf.f_type & 0xFFFFFFFF
    return FS_MAGIC.get(magic, f"{magic:#x}")


def unshare(flags: int) -> None:
    _check(_libc().unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc().setns(fd, nstype), "setns")
