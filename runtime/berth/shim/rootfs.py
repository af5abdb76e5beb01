"""Build a container's root: overlay, /proc, /sys, /dev, runtime files, mounts, masks, pivot.

Every path inside the root is resolved with openat2(RESOLVE_IN_ROOT) from a handle on the
root, and mounts go onto the resolved handle (/proc/self/fd/N): an image-controlled symlink
at /proc, /dev/null or /etc/hosts resolves inside the container, never to the host.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from berth import kernel as k

_PAGE_LIMIT = 4000  # mount(2) data is one page; leave room for the other options

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")


class SetupError(Exception):
    """A step of the container's set-up failed; the message names the step."""


def _resolve(root_fd: int, path: str, create: str | None = None) -> int:
    """An O_PATH fd for `path` inside the root; create it (as "dir" or "file") if missing."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SetupError(f"path {path!r} may not contain '..'")
    flags = k.O_PATH | k.O_CLOEXEC
    resolve = k.RESOLVE_IN_ROOT | k.RESOLVE_NO_MAGICLINKS
    try:
        return k.openat2(root_fd, "/".join(parts) or ".", flags, resolve)
    except OSError as exc:
        if exc.errno != errno.ENOENT or create is None:
            raise SetupError(f"cannot resolve {path} in the container: {exc.strerror}") from exc
    for i, name in enumerate(parts):
        sub = "/".join(parts[: i + 1])
        try:
            os.close(k.openat2(root_fd, sub, flags, resolve))
            continue
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise SetupError(f"cannot resolve {sub} in the container: {exc.strerror}") from exc
        parent = k.openat2(root_fd, "/".join(parts[:i]) or ".", flags | k.O_DIRECTORY, resolve)
        try:
            if i == len(parts) - 1 and create == "file":
                os.close(
                    os.open(
                        name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=parent
                    )
                )
            else:
                os.mkdir(name, 0o755, dir_fd=parent)
        except FileExistsError:
            pass
        finally:
            os.close(parent)
    return k.openat2(root_fd, "/".join(parts), flags, resolve)


def _mount_at(
    root_fd: int,
    path: str,
    source: str | None,
    fstype: str | None,
    flags: int = 0,
    data: str | None = None,
    create: str | None = "dir",
    bind_self: bool = False,
) -> None:
    fd = _resolve(root_fd, path, create)
    target = f"/proc/self/fd/{fd}"
    if bind_self:
        source, flags = target, k.MS_BIND | k.MS_REC
    try:
        k.mount(source, target, fstype, flags, data)
    except OSError as exc:
        raise SetupError(f"cannot mount {fstype or source} on {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _remount_ro(root_fd: int, path: str, extra: int = 0) -> None:
    """Bind `path` onto itself, then make that new mount read-only.

    The remount must name the new mount: a handle opened before the bind still points at the
    mount underneath, so the path is resolved again.
    """
    _mount_at(root_fd, path, None, None, 0, create=None, bind_self=True)
    _make_ro(root_fd, path, extra)


def _make_ro(root_fd: int, path: str, extra: int = 0) -> None:
    _remount(root_fd, path, k.MS_RDONLY | extra)


def _remount(root_fd: int, path: str, flags: int) -> None:
    """Set the flags of the bind mount at `path`, resolved again so the new mount is the one named."""
    fd = _resolve(root_fd, path)
    try:
        k.mount(None, f"/proc/self/fd/{fd}", None, k.MS_REMOUNT | k.MS_BIND | flags)
    except OSError as exc:
        raise SetupError(f"cannot set the options of mount {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _exists(root_fd: int, path: str) -> bool:
    try:
        os.close(_resolve(root_fd, path))
    except SetupError:
        return False
    return True


def mount_overlay(cfg: dict[str, Any]) -> None:
    layers: list[str] = cfg["layers"]
    target = cfg["rootfs"]
    lower = ":".join(layers)
    options = f"lowerdir={lower},upperdir={cfg['upper']},workdir={cfg['work']}"
    try:
        if len(options) <= _PAGE_LIMIT:
            k.mount("overlay", target, "overlay", 0, options)
            return
        # Too many layers for one page: one `lowerdir+` per layer through the new mount API.
        opts: list[tuple[str, str | None]] = [("lowerdir+", layer) for layer in layers]
        opts += [("upperdir", cfg["upper"]), ("workdir", cfg["work"])]
        fd = k.mount_overlay_fd(opts)
        try:
            k.move_mount_fd(fd, target)
        finally:
            os.close(fd)
    except OSError as exc:
        raise SetupError(
            f"cannot mount the container's overlay root ({len(layers)} layers): {exc.strerror}"
        ) from exc


def build(cfg: dict[str, Any]) -> None:
    """Everything from the overlay to pivot_root; runs as PID 1 of the new namespaces."""
    k.mount(None, "/", None, k.MS_REC | k.MS_PRIVATE)
    mount_overlay(cfg)
    root_fd = os.open(cfg["rootfs"], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _populate(root_fd, cfg)
    finally:
        os.close(root_fd)
    os.chdir(cfg["rootfs"])
    try:
        k.pivot_root(".", ".")
        k.umount2(".", k.MNT_DETACH)
    except OSError as exc:
        raise SetupError(f"cannot pivot into the container's root: {exc.strerror}") from exc
    os.chdir("/")
    if cfg.get("read_only"):
        k.mount(None, "/", None, k.MS_REMOUNT | k.MS_BIND | k.MS_RDONLY)


def _populate(root_fd: int, cfg: dict[str, Any]) -> None:
    nsd = k.MS_NOSUID | k.MS_NODEV
    _mount_at(root_fd, "/proc", "proc", "proc", nsd | k.MS_NOEXEC)
    if "net" in cfg["namespaces"]:
        _mount_at(root_fd, "/sys", "sysfs", "sysfs", nsd | k.MS_NOEXEC | k.MS_RDONLY)
    else:  # a host-network container may not mount a sysfs of its own: bind the host's, read-only
        _mount_at(root_fd, "/sys", "/sys", None, k.MS_BIND | k.MS_REC)
        _make_ro(root_fd, "/sys", nsd | k.MS_NOEXEC)

    _mount_at(root_fd, "/dev", "tmpfs", "tmpfs", k.MS_NOSUID, "mode=755,size=65536k")
    for node in DEV_NODES:
        _mount_at(root_fd, f"/dev/{node}", f"/dev/{node}", None, k.MS_BIND, create="file")
    _mount_at(
        root_fd,
        "/dev/pts",
        "devpts",
        "devpts",
        k.MS_NOSUID | k.MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620,gid=5",
    )
    _mount_at(root_fd, "/dev/shm", "shm", "tmpfs", nsd | k.MS_NOEXEC, "mode=1777,size=65536k")
    _mount_at(root_fd, "/dev/mqueue", "mqueue", "mqueue", nsd | k.MS_NOEXEC)
    dev = _resolve(root_fd, "/dev")
    try:
        for name, target in (
            ("ptmx", "pts/ptmx"),
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ):
            os.symlink(target, name, dir_fd=dev)  # symlinkat() takes an O_PATH dir fd
    finally:
        os.close(dev)

    for target, source in sorted(cfg.get("files", {}).items()):
        _mount_at(root_fd, target, source, None, k.MS_BIND, create="file")
        _remount(
            root_fd, target, k.MS_NOSUID | k.MS_NODEV | (k.MS_RDONLY if target == "/etc/hostname" else 0)
        )

    for m in cfg.get("mounts", []):
        _user_mount(root_fd, m)
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if cfg.get("credentials_target") and credentials:
        # systemd's credentials (a private ramfs) are the only way secrets reach the container.
        _user_mount(
            root_fd,
            {"type": "bind", "source": credentials, "target": cfg["credentials_target"], "read_only": True},
        )

    for path in cfg.get("masked_paths", []):
        _mask(root_fd, path)
    for path in cfg.get("readonly_paths", []):
        if _exists(root_fd, path):  # not every kernel has every /proc entry
            _remount_ro(root_fd, path, nsd | k.MS_NOEXEC)


def _user_mount(root_fd: int, m: dict[str, Any]) -> None:
    target = m["target"]
    nsd = k.MS_NOSUID | k.MS_NODEV
    if m["type"] == "tmpfs":
        data = f"mode={m.get('mode', '1777')}" + (f",size={m['size']}" if m.get("size") else "")
        _mount_at(root_fd, target, "tmpfs", "tmpfs", nsd | (k.MS_RDONLY if m.get("read_only") else 0), data)
        return
    source = m["source"]
    kind = "dir" if os.path.isdir(source) else "file"
    _mount_at(root_fd, target, source, None, k.MS_BIND | k.MS_REC, create=kind)
    _remount(root_fd, target, nsd | (k.MS_RDONLY if m.get("read_only") else 0))


def _mask(root_fd: int, path: str) -> None:
    try:
        fd = _resolve(root_fd, path)
    except SetupError:
        return  # nothing there to hide
    try:
        target = f"/proc/self/fd/{fd}"
        if os.path.isdir(target):
            k.mount("tmpfs", target, "tmpfs", k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC, "size=0")
        else:
            k.mount("/dev/null", target, None, k.MS_BIND)
    except OSError as exc:
        raise SetupError(f"cannot mask {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
