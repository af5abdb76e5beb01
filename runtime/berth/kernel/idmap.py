"""User namespaces and idmapped mounts: the kernel calls behind `userns: auto`.

A container's root in its own user namespace is an unprivileged uid on the host, so the image's
layers (owned by uid 0 on disk) must be shown to it through idmapped mounts (open_tree +
mount_setattr(MOUNT_ATTR_IDMAP), Linux 5.12+; overlayfs stacks idmapped layers since 5.19). The
overlay over them takes its layers as file descriptors where the kernel can (fsconfig
FSCONFIG_SET_FD "lowerdir+", Linux 6.13+); older kernels want layer paths, so a short-lived child
attaches the idmapped layers in a private mount namespace of its own, builds the overlay there
and hands it back as an fd (`_overlay_fd_staged`). Either way the mounts made here are detached:
they never appear in any mount table but the container's.

Standard library and ctypes only: this runs in the shim, on the start path of every container.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal

from berth.kernel import (
    _SYS_FSCONFIG,
    _SYS_FSMOUNT,
    _SYS_FSOPEN,
    _SYS_MOVE_MOUNT,
    _SYS_OPEN_TREE,
    CLONE_NEWNS,
    CLONE_NEWUSER,
    MS_PRIVATE,
    MS_REC,
    _check,
    _libc,
    _syscall_fd,
    mount,
)

_SYS_MOUNT_SETATTR = 442  # the same number on every architecture, as every syscall since 424

OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = 0o2000000
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_FDCWD = -100
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_IDMAP = 0x100000
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_SET_FD = 5
FSCONFIG_CMD_CREATE = 6
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def userns_fd(uid: int, gid: int, size: int) -> int:
    """A user namespace mapping ids 0..size-1 to host uid..uid+size-1 (gid likewise), as an fd.

    A helper process unshares it; this (privileged) process writes the maps from outside, as
    newuidmap does, so setgroups stays allowed inside; the helper then exits, and the fd keeps
    the namespace alive for setns(2) and MOUNT_ATTR_IDMAP.
    """
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the helper
        code = 1
        try:
            os.close(ready_r)
            os.close(go_w)
            _check(_libc().unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
            os.write(ready_w, b"1")
            os.read(go_r, 1)  # until the parent has what it needs (EOF)
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(go_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError(errno.EPERM, "cannot create a user namespace (unshare(CLONE_NEWUSER) failed)")
        for name, first in (("uid_map", uid), ("gid_map", gid)):
            with open(f"/proc/{pid}/{name}", "w") as fh:
                fh.write(f"0 {first} {size}\n")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(go_w)  # lets the helper go
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:  # pragma: no cover
            os.kill(pid, signal.SIGKILL)


def clone_tree(path: str, recursive: bool = False) -> int:
    """A detached bind mount of `path` (with the mounts under it if `recursive`), as an fd."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    return _syscall_fd(_SYS_OPEN_TREE, f"open_tree {path}", AT_FDCWD, os.fsencode(path), ctypes.c_uint(flags))


def idmapped_tree(path: str, ns_fd: int, recursive: bool = False) -> int:
    """A detached copy of the mount tree at `path`, idmapped through user namespace `ns_fd`."""
    fd = clone_tree(path, recursive)
    try:
        set_mount_attr(fd, MOUNT_ATTR_IDMAP, ns_fd, recursive)
    except BaseException:
        os.close(fd)
        raise
    return fd


def set_mount_attr(fd: int, attr_set: int, ns_fd: int = 0, recursive: bool = False) -> None:
    attr = _MountAttr(attr_set, 0, 0, ns_fd)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    ret = _libc().syscall(
        ctypes.c_long(_SYS_MOUNT_SETATTR),
        ctypes.c_int(fd),
        b"",
        ctypes.c_uint(flags),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    _check(0 if ret >= 0 else ret, "mount_setattr")


def _fsconfig(fs: int, cmd: int, key: str | None, value: bytes | None, aux: int = 0) -> int:
    ret: int = _libc().syscall(
        ctypes.c_long(_SYS_FSCONFIG),
        ctypes.c_int(fs),
        ctypes.c_uint(cmd),
        key.encode() if key is not None else None,
        value,
        ctypes.c_int(aux),
    )
    return ret


def overlay_fd(layer_fds: list[int], upper: str, work: str, staging: str | None = None) -> int:
    """A detached overlay whose lower layers are the detached mounts `layer_fds` (top first).

    `staging`, an empty directory berth owns, lets a kernel older than 6.13 do it by paths (see
    the module's docstring); without it such a kernel's refusal is raised as it is.
    """
    try:
        return _overlay(layer_fds, upper, work)
    except _LayerFdRefused as exc:
        if staging is None:
            raise OSError(exc.errno, exc.strerror) from None
    return _overlay_fd_staged(layer_fds, upper, work, staging)


class _LayerFdRefused(OSError):
    """The kernel's overlayfs takes no layer by fd (before Linux 6.13): EINVAL at lowerdir+."""


def _overlay(layer_fds: list[int], upper: str, work: str) -> int:
    fs = _syscall_fd(_SYS_FSOPEN, "fsopen overlay", b"overlay", ctypes.c_uint(1))
    try:
        for fd in layer_fds:
            if _fsconfig(fs, FSCONFIG_SET_FD, "lowerdir+", None, fd) < 0:
                err = ctypes.get_errno()
                raise _LayerFdRefused(err, f"overlay lowerdir+ by fd: {os.strerror(err)}")
        for key, path in (("upperdir", upper), ("workdir", work)):
            if _fsconfig(fs, FSCONFIG_SET_STRING, key, os.fsencode(path)) < 0:
                err = ctypes.get_errno()
                raise OSError(err, f"overlay {key}={path}: {os.strerror(err)}")
        if _fsconfig(fs, FSCONFIG_CMD_CREATE, None, None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"create overlay: {os.strerror(err)}")
        return _syscall_fd(_SYS_FSMOUNT, "fsmount overlay", fs, ctypes.c_uint(1), ctypes.c_uint(0))
    finally:
        os.close(fs)


def _overlay_fd_staged(layer_fds: list[int], upper: str, work: str, staging: str) -> int:
    """The overlay by layer paths, built by a child in a private mount namespace of its own.

    The child attaches each idmapped layer on `staging`/N (overlayfs clones the layers' mounts
    as it is created, which it allows only for mounts of the caller's own namespace), mounts the
    overlay on `staging`/root, sends a detached clone of it back over a socketpair and exits: its
    namespace and the staged mounts go with it, the host's mount table never sees them, and
    `staging` holds empty dirs only.
    """
    import socket

    names = [str(i) for i in range(len(layer_fds))]
    for name in (*names, "root"):
        os.makedirs(os.path.join(staging, name), exist_ok=True)
    # SEQPACKET, not DGRAM: a child that dies before it answers reads as EOF, not a hang.
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            parent.close()
            _check(_libc().unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            os.chdir(staging)  # relative layer paths ("0:1:..."): hundreds fit in the option page
            for fd, name in zip(layer_fds, names, strict=True):
                target = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    attach(fd, target)
                finally:
                    os.close(target)
            # mount(2), not fsconfig: fsconfig caps a string at 256 bytes, mount(2) at a page.
            mount(
                "overlay", "root", "overlay", 0, f"lowerdir={':'.join(names)},upperdir={upper},workdir={work}"
            )
            socket.send_fds(child, [b"0"], [clone_tree(os.path.join(staging, "root"))])
            code = 0
        except OSError as exc:
            child.send(f"{exc.errno}:{exc.strerror}".encode())
        except BaseException as exc:  # anything else: said, never raised past the fork
            child.send(f"{errno.EIO}:{exc}".encode())
        finally:
            os._exit(code)
    child.close()
    try:
        msg, fds, _flags, _addr = socket.recv_fds(parent, 4096, 1)
    finally:
        parent.close()
        os.waitpid(pid, 0)
    if fds:
        os.set_inheritable(fds[0], False)
        return fds[0]
    err, _, text = msg.decode(errors="replace").partition(":")
    raise OSError(int(err) if err.isdigit() else errno.EIO, text or "the overlay builder failed")


def detached_fs(fstype: str, options: dict[str, str], attrs: int = 0) -> int:
    """A new filesystem mounted nowhere (a tmpfs to hand files in, a sysfs of a netns), as an fd."""
    fs = _syscall_fd(_SYS_FSOPEN, f"fsopen {fstype}", fstype.encode(), ctypes.c_uint(1))
    try:
        for key, value in options.items():
            if _fsconfig(fs, FSCONFIG_SET_STRING, key, value.encode()) < 0:
                err = ctypes.get_errno()
                raise OSError(err, f"{fstype} {key}={value}: {os.strerror(err)}")
        if _fsconfig(fs, FSCONFIG_CMD_CREATE, None, None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"create {fstype}: {os.strerror(err)}")
        return _syscall_fd(_SYS_FSMOUNT, f"fsmount {fstype}", fs, ctypes.c_uint(1), ctypes.c_uint(attrs))
    finally:
        os.close(fs)


def attach(mount_fd: int, target_fd: int) -> None:
    """Attach the detached mount `mount_fd` on the directory or file open as `target_fd`."""
    ret = _libc().syscall(
        ctypes.c_long(_SYS_MOVE_MOUNT),
        ctypes.c_int(mount_fd),
        b"",
        ctypes.c_int(target_fd),
        b"",
        ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
    )
    _check(0 if ret >= 0 else ret, "move_mount")


def become_root() -> None:
    """In a freshly joined user namespace: uid and gid 0 there (the mapped ids on the host)."""
    _check(_libc().setresgid(0, 0, 0), "setresgid(0)")
    _check(_libc().setresuid(0, 0, 0), "setresuid(0)")
