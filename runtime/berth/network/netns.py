"""Network namespaces the runtime creates, bind-mounted at /run/berth/netns/<container>.

The namespace outlives any process: it is made before the container's unit starts (veth,
address, routes are ready when the shim joins it), and a restart by systemd joins the same one.
Created the way `ip netns add` does it, through the berth.kernel seam: the calling thread
unshares a new network namespace, bind-mounts its handle, and returns to its own.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from berth import kernel as k

_SELF = "/proc/thread-self/ns/net"


def create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    own = os.open(_SELF, os.O_RDONLY | os.O_CLOEXEC)
    try:
        k.unshare(k.CLONE_NEWNET)
        try:
            k.mount(_SELF, str(path), None, k.MS_BIND)
        finally:
            k.setns(own, k.CLONE_NEWNET)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(own)


def exists(path: Path) -> bool:
    """A bind-mounted namespace handle (a plain leftover file after a reboot does not count)."""
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except FileNotFoundError:
        return False


def remove(path: Path) -> bool:
    """Unmount and delete the handle; the namespace goes when its last user (the container) does."""
    found = path.exists()
    try:
        k.umount2(str(path), k.MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    path.unlink(missing_ok=True)
    return found


@contextmanager
def inside(path: Path) -> Iterator[None]:
    """Run the body with this thread in the namespace at `path` (netlink sockets opened there stay)."""
    own = os.open(_SELF, os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        k.setns(target, k.CLONE_NEWNET)
        try:
            yield
        finally:
            k.setns(own, k.CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(own)
