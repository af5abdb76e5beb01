"""The shim's part of `userns`: a user namespace for the container, and what it needs to see.

On the host side, before the container's process is forked, the shim (root) makes everything
that takes host privileges, all of it detached (mounted nowhere, gone with the fds):

- the user namespace itself, its maps written from outside (berth.kernel.idmap.userns_fd);
- the overlay root, over idmapped image layers (files owned by 0 on disk are the container's
  root's), with an upper dir the runtime chowned to the range: writes land there as the host uid;
- named volumes, idmapped, and bind mounts, cloned (the mapped root may not reach their source);
- the sysfs of the network namespace the runtime prepared (bridge mode);
- the secrets, copied from systemd's credentials (a ramfs only host root may read) into a tmpfs
  owned by the container's root.

The intermediate process then joins the network namespace the runtime prepared (owned by the
host's user namespace, it cannot be joined from inside), then the user namespace, and becomes
root there; the pid, mount, uts, ipc, cgroup and net namespaces it and its child create next are
owned by the container's user namespace, so its capabilities are relative to that.
"""

from __future__ import annotations

import os

from berth import kernel as k
from berth.kernel import idmap
from berth.shim.rootfs import SetupError

TYPE_CHECKING = False  # not `from typing import`: importing typing costs the shim ms at every start
if TYPE_CHECKING:
    from typing import Any


def prepare(cfg: dict[str, Any]) -> None:
    """Host side: the namespace and the detached mounts, as fds in `cfg` (inherited by the fork)."""
    ids = cfg["userns"]
    try:
        ns = idmap.userns_fd(ids["uid"], ids["gid"], ids["size"])
    except OSError as exc:
        raise SetupError(f"cannot create the container's user namespace: {exc.strerror}") from exc
    cfg["_userns_fd"] = ns
    layers = []
    for layer in cfg["layers"]:
        try:
            layers.append(idmap.idmapped_tree(layer, ns))
        except OSError as exc:
            raise SetupError(f"cannot idmap image layer {layer}: {exc.strerror}") from exc
    try:
        # Empty mount points beside the upper dir, for kernels before 6.13 (see idmap.overlay_fd).
        staging = os.path.join(os.path.dirname(cfg["upper"]), "idmap-layers")
        cfg["_overlay_fd"] = idmap.overlay_fd(layers, cfg["upper"], cfg["work"], staging)
    except OSError as exc:
        raise SetupError(
            f"cannot mount the container's overlay root over idmapped layers: {exc.strerror}"
        ) from exc
    finally:
        for fd in layers:
            os.close(fd)
    for m in cfg.get("mounts", []):
        if m["type"] != "bind":
            continue
        # Cloned here, as the host's root: the mapped root may not be able to reach the source.
        try:
            m["_fd"] = (
                idmap.idmapped_tree(m["source"], ns)
                if m.get("idmap")
                else idmap.clone_tree(m["source"], True)
            )
        except OSError as exc:
            what = "idmap mount" if m.get("idmap") else "bind mount"
            raise SetupError(f"cannot {what} {m['source']}: {exc.strerror}") from exc
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if cfg.get("credentials_target") and credentials:
        cfg["_secrets_fd"] = _secrets(credentials, ids["uid"], ids["gid"])


def _secrets(source: str, uid: int, gid: int) -> int:
    """A read-only tmpfs holding a copy of the credentials, owned by the container's root."""
    names = sorted(os.listdir(source))
    data = {}
    for name in names:
        with open(os.path.join(source, name), "rb") as fh:
            data[name] = fh.read()
    size = sum(len(v) for v in data.values()) + 4096 * (len(data) + 4)
    try:
        fd = idmap.detached_fs("tmpfs", {"mode": "0500", "uid": str(uid), "gid": str(gid), "size": str(size)})
        for name, content in data.items():
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400, dir_fd=fd)
            try:
                os.write(out, content)
                os.fchown(out, uid, gid)
            finally:
                os.close(out)
        locked = idmap.MOUNT_ATTR_NOSUID | idmap.MOUNT_ATTR_NODEV | idmap.MOUNT_ATTR_NOEXEC
        idmap.set_mount_attr(fd, idmap.MOUNT_ATTR_RDONLY | locked)
    except OSError as exc:
        raise SetupError(f"cannot hand the secrets to the container's userns: {exc.strerror}") from exc
    return fd


def join(cfg: dict[str, Any]) -> None:
    """In the intermediate process: the prepared netns (if any), then the user namespace."""
    netns = cfg.get("netns_path")
    if netns:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            k.setns(fd, k.CLONE_NEWNET)
        finally:
            os.close(fd)
        cfg["_netns_joined"] = True
        # Its sysfs, made while still the host's root (a user namespace cannot mount the sysfs
        # of a netns it does not own): the container sees its own interfaces, not the host's.
        flags = (
            idmap.MOUNT_ATTR_RDONLY
            | idmap.MOUNT_ATTR_NOSUID
            | idmap.MOUNT_ATTR_NODEV
            | idmap.MOUNT_ATTR_NOEXEC
        )
        try:
            cfg["_sysfs_fd"] = idmap.detached_fs("sysfs", {}, flags)
        except OSError as exc:
            raise SetupError(f"cannot mount the sysfs of the container's network: {exc.strerror}") from exc
    k.setns(cfg["_userns_fd"], k.CLONE_NEWUSER)
    idmap.become_root()
