"""The cgroup hierarchies mounted here, read from /proc/self/mountinfo.

One parser for the lab (which hierarchies a host's subtree goes in) and the shim's `exec` (which
cgroup directories to join): v1 controllers, `name=` hierarchies and the unified cgroup2 mount,
on v1, v2 or hybrid hosts. No imports: the shim loads it on the exec path.
"""

from __future__ import annotations


class CgroupMount:
    """One mounted hierarchy. `options` are its superblock options in the kernel's order
    ("rw", "cpu", "cpuacct"), the order /proc/PID/cgroup names the controllers in; `root` is the
    mount's root within the hierarchy."""

    __slots__ = ("mountpoint", "options", "root", "version")

    def __init__(self, version: int, options: tuple[str, ...], mountpoint: str, root: str) -> None:
        self.version, self.options, self.mountpoint, self.root = version, options, mountpoint, root

    def relative(self, path: str) -> str:
        """A path of /proc/PID/cgroup as seen under this mount (whose root may be deeper)."""
        if self.root != "/" and path.startswith(self.root):
            return path[len(self.root) :]
        return path


def cgroup_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[CgroupMount]:
    found = []
    with open(mountinfo) as fh:
        for line in fh:
            left, right = line.split(" - ", 1)
            fstype, _source, superopts = right.split()[:3]
            if fstype in ("cgroup", "cgroup2"):
                fields = left.split()
                version = 2 if fstype == "cgroup2" else 1
                found.append(CgroupMount(version, tuple(superopts.split(",")), fields[4], fields[3]))
    return found
