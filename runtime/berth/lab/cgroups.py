"""A cgroup subtree per lab host on the machine, so each host's systemd owns its own root.

A host's cgroup namespace is rooted at the cgroup its first process was in. Two hosts booted
from the same cgroup would see the same root and fight over `system.slice`; so the boot script
first moves itself into a directory of its own in every hierarchy, then unshares.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from berth.cgroup_mounts import cgroup_mounts
from berth.errors import LabError

_V1_OPTIONS_IGNORED = {"rw", "ro", "relatime", "nosuid", "nodev", "noexec", "noatime", "clone_children"}


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy: `controllers` as mount options ("memory", "name=systemd")."""

    version: int
    controllers: str
    mountpoint: Path
    own_path: str

    @property
    def own_dir(self) -> Path:
        return self.mountpoint / self.own_path.lstrip("/")


def _own_paths() -> dict[str, str]:
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            paths[controllers] = path
    return paths


def machine_hierarchies() -> list[Hierarchy]:
    own = _own_paths()
    found: list[Hierarchy] = []
    for mount in cgroup_mounts():
        if mount.version == 2:
            if "" in own:
                found.append(Hierarchy(2, "", Path(mount.mountpoint), mount.relative(own[""])))
            continue
        opts = [o for o in mount.options if o not in _V1_OPTIONS_IGNORED]
        key = ",".join(o for o in opts if not o.startswith("release_agent"))
        path = own.get(key)
        if path is not None:
            found.append(Hierarchy(1, key, Path(mount.mountpoint), mount.relative(path)))
    return found


def v1_controllers(hierarchies: list[Hierarchy]) -> list[str]:
    """The v1 controller hierarchies a host mounts fresh (name=systemd is mounted apart)."""
    return [h.controllers for h in hierarchies if h.version == 1 and not h.controllers.startswith("name=")]


def create_host_cgroups(hierarchies: list[Hierarchy], leaf: str) -> list[Path]:
    """Create `leaf` under our own cgroup in every hierarchy; return the dirs."""
    dirs: list[Path] = []
    for h in hierarchies:
        d = h.own_dir / leaf
        try:
            d.mkdir(exist_ok=True)
            if h.version == 1 and "cpuset" in h.controllers.split(","):
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    (d / knob).write_text((h.own_dir / knob).read_text())
        except OSError as exc:
            raise LabError(f"cannot create cgroup {d}: {exc.strerror}") from exc
        dirs.append(d)
    return dirs


def procs_in(dirs: list[Path]) -> set[int]:
    """Every process in the subtrees: they are all the host's, the lab put them there."""
    pids: set[int] = set()
    for top in dirs:
        for path, _subdirs, _files in os.walk(top):
            try:
                with open(os.path.join(path, "cgroup.procs")) as fh:
                    pids.update(int(p) for p in fh.read().split())
            except (FileNotFoundError, ProcessLookupError):
                continue
    return pids


def remove_tree(dirs: list[Path], timeout: float = 10.0) -> list[str]:
    """rmdir the subtrees bottom-up; return the dirs that could not be removed."""
    deadline = time.monotonic() + timeout
    left: list[str] = []
    for top in dirs:
        if not top.exists():
            continue
        while True:
            busy = _rmdir_bottom_up(top)
            if not busy or time.monotonic() > deadline:
                left.extend(busy)
                break
            time.sleep(0.1)
    return left


def _rmdir_bottom_up(top: Path) -> list[str]:
    busy: list[str] = []
    for path, _subdirs, _files in os.walk(top, topdown=False):
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            busy.append(path)
    return busy
