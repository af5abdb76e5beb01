"""The one seam between Berth and the Linux kernel's namespace, mount and filesystem calls.

Python 3.11's standard library lacks `os.unshare`/`os.setns` (added in 3.12), `mount`,
`umount2`, `pivot_root` and `statfs`; these go through libc with ctypes, here and nowhere else,
so that the rest of the runtime stays testable and the risky calls stay few and visible.
"""

from __future__ import annotations

import ctypes
import os

TYPE_CHECKING = False  # not `from typing import`: importing typing costs the shim ms at every start
if TYPE_CHECKING:
    from types import ModuleType

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


_LIBC: list[ctypes.CDLL] = []


def _libc() -> ctypes.CDLL:
    if not _LIBC:
        _LIBC.append(_load_libc())
    return _LIBC[0]


def _load_libc() -> ctypes.CDLL:
    # glibc's soname first, then the symbols already loaded into this process (musl's libc
    # too); ctypes.util.find_library only as the last resort: it runs `ldconfig -p`, a process
    # and milliseconds at every start of the shim.
    for name in ("libc.so.6", None):
        try:
            return ctypes.CDLL(name, use_errno=True)
        except OSError:
            continue
    from ctypes.util import find_library

    return ctypes.CDLL(find_library("c") or "libc.so.6", use_errno=True)


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


# -- mounts ---------------------------------------------------------------------------------
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MNT_DETACH = 0x2

# The new mount API (Linux 5.2+): used for overlays whose option string would not fit a page.
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_SYS_OPENAT2 = 437
FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1
MOVE_MOUNT_F_EMPTY_PATH = 0x4

# openat2 resolve flags: RESOLVE_IN_ROOT treats the dirfd as "/" for every path component,
# symlinks included, which is what makes image-controlled paths safe to mount on.
# RESOLVE_NO_SYMLINKS refuses (ELOOP) any symlink on the way: for the kernel filesystems'
# mount points, whose meaning must not depend on what the image or earlier mounts put there.
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_IN_ROOT = 0x10
O_PATH = 0o10000000
O_CLOEXEC = 0o2000000
O_DIRECTORY = 0o200000
O_NOFOLLOW = 0o400000


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    libc = _libc()
    ret = libc.mount(_b(source), os.fsencode(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    _check(ret, f"mount {fstype or source} on {target}")


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc().umount2(os.fsencode(target), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    ret = _libc().syscall(155, os.fsencode(new_root), os.fsencode(put_old))  # SYS_pivot_root
    _check(ret, "pivot_root")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc().sethostname(raw, len(raw)), "sethostname")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    how = _OpenHow(flags, mode, resolve)
    fd: int = _libc().syscall(
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_int(dirfd),
        os.fsencode(path),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"openat2 {path}: {os.strerror(err)}")
    return fd


def _syscall_fd(number: int, what: str, *args: object) -> int:
    fd: int = _libc().syscall(ctypes.c_long(number), *args)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return fd


def mount_overlay_fd(options: list[tuple[str, str | None]]) -> int:
    """Create an overlay with the new mount API; return a detached mount fd.

    Each option is (key, value); `lowerdir+` may repeat, one layer per call, so the number of
    layers is not bound by the page-sized option string of mount(2) (Linux 6.8+).
    """
    fs = _syscall_fd(_SYS_FSOPEN, "fsopen overlay", b"overlay", ctypes.c_uint(FSOPEN_CLOEXEC))
    try:
        for key, value in options:
            if value is None:
                ret = _libc().syscall(
                    ctypes.c_long(_SYS_FSCONFIG), fs, FSCONFIG_SET_FLAG, key.encode(), None, 0
                )
            else:
                ret = _libc().syscall(
                    ctypes.c_long(_SYS_FSCONFIG), fs, FSCONFIG_SET_STRING, key.encode(), os.fsencode(value), 0
                )
            _check(0 if ret >= 0 else ret, f"overlay option {key}={value}")
        ret = _libc().syscall(ctypes.c_long(_SYS_FSCONFIG), fs, FSCONFIG_CMD_CREATE, None, None, 0)
        _check(0 if ret >= 0 else ret, "create overlay")
        return _syscall_fd(_SYS_FSMOUNT, "fsmount", fs, ctypes.c_uint(FSMOUNT_CLOEXEC), ctypes.c_uint(0))
    finally:
        os.close(fs)


def move_mount_fd(mount_fd: int, target: str) -> None:
    ret = _libc().syscall(
        ctypes.c_long(_SYS_MOVE_MOUNT),
        mount_fd,
        b"",
        ctypes.c_int(-100),  # AT_FDCWD
        os.fsencode(target),
        ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH),
    )
    _check(0 if ret >= 0 else ret, f"move_mount to {target}")


# -- process attributes ---------------------------------------------------------------------
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
CAP_LAST_CAP = 40


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    ret: int = _libc().prctl(
        option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)
    )
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return ret


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_bounding_capabilities(keep: frozenset[int]) -> None:
    """Drop every capability not in `keep` from the bounding set, for good; clear ambient."""
    for cap in range(CAP_LAST_CAP + 1):
        if cap not in keep:
            try:
                prctl(PR_CAPBSET_DROP, cap)
            except OSError as exc:
                if exc.errno != 22:  # EINVAL: this kernel does not know the capability
                    raise
    try:
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass


def set_capabilities(keep: frozenset[int]) -> None:
    """Set the effective and permitted sets of a root process to `keep`.

    Capabilities this process does not hold itself (the host may have dropped some, or the
    kernel may not know them) cannot be granted and are left out.
    """
    mask = 0
    for cap in keep:
        mask |= 1 << cap
    mask &= permitted_capabilities()
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        word = (mask >> (32 * i)) & 0xFFFFFFFF
        # Inheritable stays empty, as in runc since CVE-2022-24769.
        data[i].effective = data[i].permitted = word
    ret = _libc().syscall(ctypes.c_long(126), ctypes.byref(header), ctypes.byref(data))  # SYS_capset
    _check(0 if ret >= 0 else ret, "capset")


def permitted_capabilities() -> int:
    """This thread's permitted capability set, as a bit mask, from capget(2).

    Not from /proc/self/status: after pivot_root, /proc is whatever the container's root has
    there, and a file planted by the image must not decide which capabilities are granted.
    """
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    ret = _libc().syscall(ctypes.c_long(125), ctypes.byref(header), ctypes.byref(data))  # SYS_capget
    _check(0 if ret >= 0 else ret, "capget")
    return int(data[0].permitted) | (int(data[1].permitted) << 32)


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


# -- file operations confined to a directory handle (image layers) -------------------------------
# Image content is hostile: every path inside a layer is resolved by the kernel relative to the
# layer's directory fd, so symlinks planted by the image cannot lead a write outside of it.
RESOLVE_CONFINED = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS


def open_in_root(root_fd: int, path: str | bytes, flags: int, mode: int = 0) -> int:
    """Open `path` as if `root_fd` were "/": `..`, absolute paths and symlinks stay inside it."""
    how = _OpenHow(flags | O_CLOEXEC, mode, RESOLVE_CONFINED)
    raw = path if isinstance(path, bytes) else os.fsencode(path)
    fd: int = _libc().syscall(
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_int(root_fd),
        raw,
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), os.fsdecode(raw))
    return fd


def lsetxattr_at(dir_fd: int, name: str, key: str, value: bytes) -> None:
    """Set an xattr on `name` in the directory `dir_fd`, never following a final symlink.

    There is no setxattrat(2) before Linux 6.13; the directory is pinned by its fd, reached through
    /proc/self/fd, and the last component is not followed (lsetxattr).
    """
    os.setxattr(f"/proc/self/fd/{dir_fd}/{name}", key, value, follow_symlinks=False)


def llistxattr_at(dir_fd: int, name: str) -> list[str]:
    return os.listxattr(f"/proc/self/fd/{dir_fd}/{name}", follow_symlinks=False)


def lgetxattr_at(dir_fd: int, name: str, key: str) -> bytes:
    return os.getxattr(f"/proc/self/fd/{dir_fd}/{name}", key, follow_symlinks=False)


def syncfs(fd: int) -> None:
    """Flush the filesystem holding `fd` (one call instead of an fsync per extracted file)."""
    _check(_libc().syncfs(fd), "syncfs")


# -- network ---------------------------------------------------------------------------------
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def loopback_up() -> None:
    """Bring `lo` up in the current network namespace (a new one starts with it down).

    Two ioctls on a socket: cheaper than netlink for this one flag, and needs no library.
    """
    import fcntl
    import struct

    sockets = socket_module()
    sock = sockets.socket(sockets.AF_INET, sockets.SOCK_DGRAM)
    try:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))
    finally:
        sock.close()


def socket_module() -> ModuleType:
    """`_socket`, the C module under `socket`: the same socket calls, but importing `socket`
    itself costs the shim milliseconds (it builds enums of every constant) on a container's start."""
    try:
        import _socket

        return _socket
    except ImportError:  # pragma: no cover - CPython always has it
        import socket

        return socket
