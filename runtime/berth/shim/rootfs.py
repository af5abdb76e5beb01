"""Build a container's root: overlay, /proc, /sys, /dev, runtime files, mounts, masks, pivot.

Every path inside the root is resolved with openat2(RESOLVE_IN_ROOT) from a handle on the
root, and mounts go onto the resolved handle (/proc/self/fd/N): an image-controlled symlink
at /etc/hosts or a volume's target resolves inside the container, never to the host.

The mount points of the kernel's filesystems (/proc, /sys, /dev and what the runtime mounts in
it) and the masked and read-only paths are resolved with RESOLVE_NO_SYMLINKS as well: a symlink
there is refused, as runc and crun do. Followed, it could mean one place when procfs is mounted
and another once /dev is replaced, leaving the real procfs unmasked and /proc/sys writable.
"""

from __future__ import annotations

import errno
import os
import stat

from berth import kernel as k

TYPE_CHECKING = False  # not `from typing import`: importing typing costs the shim ms at every start
if TYPE_CHECKING:
    from typing import Any

_PAGE_LIMIT = 4000  # mount(2) data is one page; leave room for the other options

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
# In a user namespace the flags of mounts copied from the host are locked (mount_namespaces(7)):
# a remount must keep them. Set by `build` for a container with a user namespace.
_KEEP_LOCKED: list[bool] = [False]
_LOCKABLE = ((os.ST_RDONLY, k.MS_RDONLY), (os.ST_NOSUID, k.MS_NOSUID), (os.ST_NODEV, k.MS_NODEV),
             (os.ST_NOEXEC, k.MS_NOEXEC))  # fmt: skip


class SetupError(Exception):
    """A step of the container's set-up failed; the message names the step."""


def _parts(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SetupError(f"path {path!r} may not contain '..'")
    return parts


def _open(root_fd: int, sub: str, symlinks: bool, extra: int = 0) -> int:
    """openat2 of `sub` under the root; in strict mode (no symlinks) a symlink is a SetupError."""
    resolve = k.RESOLVE_IN_ROOT | (k.RESOLVE_NO_MAGICLINKS if symlinks else k.RESOLVE_NO_SYMLINKS)
    try:
        return k.openat2(root_fd, sub or ".", k.O_PATH | k.O_CLOEXEC | extra, resolve)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not symlinks:
            raise _symlink_refused(root_fd, sub) from exc
        raise


def _symlink_refused(root_fd: int, sub: str) -> SetupError:
    """The error for a symlink at (or on the way to) a kernel mount point, naming the symlink.

    As runc ("must be mounted on ordinary directory"): a symlink there would make the path mean
    one place when the filesystem is mounted and another when it is masked, so it is refused.
    """
    parts = sub.split("/")
    culprit = "/" + sub
    for i in range(len(parts)):
        prefix = "/".join(parts[: i + 1])
        try:
            if stat.S_ISLNK(os.stat(prefix, dir_fd=root_fd, follow_symlinks=False).st_mode):
                culprit = "/" + prefix
                break
        except OSError:
            break
    return SetupError(
        f"/{sub} must be an ordinary directory or file in the container's root, but {culprit} is a "
        "symlink in the image: kernel filesystems, masks and read-only paths are never mounted "
        "through a symlink"
    )


def _resolve(root_fd: int, path: str, create: str | None = None, symlinks: bool = True) -> int:
    """An O_PATH fd for `path` inside the root; create it (as "dir" or "file") if missing.

    symlinks=False is for the mount points of the kernel's filesystems, masks and read-only
    paths: any symlink on the way is refused, so each of these paths names one place only.
    """
    parts = _parts(path)
    try:
        return _open(root_fd, "/".join(parts), symlinks)
    except OSError as exc:
        if exc.errno != errno.ENOENT or create is None:
            raise SetupError(f"cannot resolve {path} in the container: {exc.strerror}") from exc
    try:
        for i, name in enumerate(parts):
            sub = "/".join(parts[: i + 1])
            try:
                os.close(_open(root_fd, sub, symlinks))
                continue
            except FileNotFoundError:
                pass
            parent = _open(root_fd, "/".join(parts[:i]), symlinks, k.O_DIRECTORY)
            try:
                if i == len(parts) - 1 and create == "file":
                    flags = os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                    os.close(os.open(name, flags, 0o644, dir_fd=parent))
                else:
                    os.mkdir(name, 0o755, dir_fd=parent)
            except FileExistsError:
                pass
            finally:
                os.close(parent)
        return _open(root_fd, "/".join(parts), symlinks)
    except OSError as exc:
        raise SetupError(f"cannot create {path} in the container: {exc.strerror}") from exc


def _existing(root_fd: int, path: str) -> int | None:
    """A strict O_PATH fd for a mask or read-only path; None only when it does not exist.

    Not every kernel has every /proc or /sys entry, so ENOENT is skipped; any other failure
    (a symlink, a component that is not a directory) refuses the start: a mask that silently
    did not apply would leave the kernel interface it hides open.
    """
    try:
        return _open(root_fd, "/".join(_parts(path)), symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SetupError(f"cannot resolve {path} in the container: {exc.strerror}") from exc


def _mount_at(
    root_fd: int,
    path: str,
    source: str | None,
    fstype: str | None,
    flags: int = 0,
    data: str | None = None,
    create: str | None = "dir",
    bind_self: bool = False,
    symlinks: bool = True,
) -> None:
    fd = _resolve(root_fd, path, create, symlinks)
    target = f"/proc/self/fd/{fd}"
    if bind_self:
        source, flags = target, k.MS_BIND | k.MS_REC
    try:
        k.mount(source, target, fstype, flags, data)
    except OSError as exc:
        raise SetupError(f"cannot mount {fstype or source} on {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _kernel_mount(
    root_fd: int,
    path: str,
    source: str | None,
    fstype: str | None,
    flags: int = 0,
    data: str | None = None,
    create: str = "dir",
) -> None:
    """Mount a kernel filesystem (or device node) at `path`, which no symlink may lead to."""
    _mount_at(root_fd, path, source, fstype, flags, data, create, symlinks=False)


def _remount_ro(root_fd: int, path: str, extra: int = 0) -> None:
    """Bind `path` onto itself, then make that new mount read-only (strictly resolved).

    The remount must name the new mount: a handle opened before the bind still points at the
    mount underneath, so the path is resolved again.
    """
    _mount_at(root_fd, path, None, None, 0, create=None, bind_self=True, symlinks=False)
    _remount(root_fd, path, k.MS_RDONLY | extra, symlinks=False)


def _remount(root_fd: int, path: str, flags: int, symlinks: bool = True) -> None:
    """Set the flags of the bind mount at `path`, resolved again so the new mount is the one named."""
    fd = _resolve(root_fd, path, symlinks=symlinks)
    try:
        if _KEEP_LOCKED[0]:
            now = os.statvfs(f"/proc/self/fd/{fd}").f_flag
            flags |= sum(ms for st, ms in _LOCKABLE if now & st)
        k.mount(None, f"/proc/self/fd/{fd}", None, k.MS_REMOUNT | k.MS_BIND | flags)
    except OSError as exc:
        raise SetupError(f"cannot set the options of mount {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def mount_overlay(cfg: dict[str, Any]) -> None:
    if cfg.get("_overlay_fd") is not None:  # userns: the shim made it over idmapped layers
        _attach(cfg["_overlay_fd"], cfg["rootfs"])
        return
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


def _attach(mount_fd: int, target: str, root_fd: int | None = None, create: str = "dir") -> None:
    """Attach a detached mount the shim made on the host side (berth.shim.userns)."""
    from berth.kernel import idmap

    fd = os.open(target, os.O_PATH | os.O_CLOEXEC) if root_fd is None else _resolve(root_fd, target, create)
    try:
        idmap.attach(mount_fd, fd)
    except OSError as exc:
        raise SetupError(f"cannot mount {target} in the container's user namespace: {exc.strerror}") from exc
    finally:
        os.close(fd)
        os.close(mount_fd)


def build(cfg: dict[str, Any]) -> None:
    """Everything from the overlay to pivot_root; runs as PID 1 of the new namespaces."""
    _KEEP_LOCKED[0] = bool(cfg.get("userns"))
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
    _kernel_mount(root_fd, "/proc", "proc", "proc", nsd | k.MS_NOEXEC)
    if cfg.get("_sysfs_fd") is not None:  # userns, bridge: made before entering the userns
        _attach(cfg["_sysfs_fd"], "/sys", root_fd)
    elif "net" in cfg["namespaces"]:
        _kernel_mount(root_fd, "/sys", "sysfs", "sysfs", nsd | k.MS_NOEXEC | k.MS_RDONLY)
    else:  # a host-network container may not mount a sysfs of its own: bind the host's, read-only
        _kernel_mount(root_fd, "/sys", "/sys", None, k.MS_BIND | k.MS_REC)
        _remount(root_fd, "/sys", k.MS_RDONLY | nsd | k.MS_NOEXEC, symlinks=False)

    _kernel_mount(root_fd, "/dev", "tmpfs", "tmpfs", k.MS_NOSUID, "mode=755,size=65536k")
    for node in DEV_NODES:
        _kernel_mount(root_fd, f"/dev/{node}", f"/dev/{node}", None, k.MS_BIND, create="file")
    _kernel_mount(
        root_fd,
        "/dev/pts",
        "devpts",
        "devpts",
        k.MS_NOSUID | k.MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620,gid=5",
    )
    _kernel_mount(root_fd, "/dev/shm", "shm", "tmpfs", nsd | k.MS_NOEXEC, "mode=1777,size=65536k")
    _kernel_mount(root_fd, "/dev/mqueue", "mqueue", "mqueue", nsd | k.MS_NOEXEC)
    dev = _resolve(root_fd, "/dev", symlinks=False)
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
    if cfg.get("_secrets_fd") is not None:  # userns: a copy the container's root may read
        _attach(cfg["_secrets_fd"], cfg["credentials_target"], root_fd)
    elif cfg.get("credentials_target") and credentials:
        # systemd's credentials (a private ramfs) are the only way secrets reach the container.
        _user_mount(
            root_fd,
            {"type": "bind", "source": credentials, "target": cfg["credentials_target"], "read_only": True},
        )

    for path in cfg.get("masked_paths", []):
        _mask(root_fd, path)
    for path in cfg.get("readonly_paths", []):
        fd = _existing(root_fd, path)
        if fd is None:  # not every kernel has every /proc entry
            continue
        os.close(fd)
        _remount_ro(root_fd, path, nsd | k.MS_NOEXEC)


def _user_mount(root_fd: int, m: dict[str, Any]) -> None:
    target = m["target"]
    nsd = k.MS_NOSUID | k.MS_NODEV
    if m["type"] == "tmpfs":
        data = f"mode={m.get('mode', '1777')}" + (f",size={m['size']}" if m.get("size") else "")
        _mount_at(root_fd, target, "tmpfs", "tmpfs", nsd | (k.MS_RDONLY if m.get("read_only") else 0), data)
        return
    source = m["source"]
    if m.get("_fd") is not None:  # userns: a bind or idmapped volume the shim made on the host side
        _attach(m["_fd"], target, root_fd, "dir" if stat.S_ISDIR(os.fstat(m["_fd"]).st_mode) else "file")
    else:
        kind = "dir" if os.path.isdir(source) else "file"
        _mount_at(root_fd, target, source, None, k.MS_BIND | k.MS_REC, create=kind)
    _remount(root_fd, target, nsd | (k.MS_RDONLY if m.get("read_only") else 0))


def _mask(root_fd: int, path: str) -> None:
    fd = _existing(root_fd, path)
    if fd is None:
        return  # nothing there to hide
    try:
        target = f"/proc/self/fd/{fd}"
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            k.mount("tmpfs", target, "tmpfs", k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC, "size=0")
        else:
            k.mount("/dev/null", target, None, k.MS_BIND)
    except OSError as exc:
        raise SetupError(f"cannot mask {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
