"""Named volumes: directories the runtime keeps under its data dir, as podman's named volumes.

A volume is `volumes/NAME/data` (what containers mount) beside `volume.json` (its name and when
it was made). A container's create makes the volumes its spec names; its removal keeps them, so
data outlives containers and revisions. A volume is in use while a container record names it or
a kept deployment revision does (a rollback starts that revision's containers again, on the same
data): `rm` refuses it, naming the users, and `prune` keeps it.

Every change is planned, then applied (`berth.plan`), under the containers lock, so no create
can start using a volume while it goes. A volume appears whole or not at all: it is made in a
temporary directory and renamed into place.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth import plan as plans
from berth.containers import records
from berth.containers.spec import validate_volume_name
from berth.errors import Conflict, InvalidInput, NotFound
from berth.plan import Action
from berth.state.atomic import atomic_write_json, read_json
from berth.state.store import data_dir

METADATA = "volume.json"


def root() -> Path:
    return data_dir() / "volumes"


def path_of(name: str) -> Path:
    """What a container mounts for volume `name`."""
    return root() / name / "data"


@dataclass
class Volume:
    name: str
    created_at: str | None
    users: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(path_of(self.name)), "created_at": self.created_at,
                "users": self.users, "in_use": bool(self.users)}  # fmt: skip


def names() -> list[str]:
    try:
        entries = os.listdir(root())
    except FileNotFoundError:
        return []
    return sorted(e for e in entries if not e.startswith(".") and (root() / e / "data").is_dir())


def users() -> dict[str, list[str]]:
    """Volume name -> what uses it: containers, and kept revisions of deployments."""
    found: dict[str, set[str]] = {}
    for name in records.names():
        spec = (records.get(name) or {}).get("spec") or {}
        for m in spec.get("mounts") or []:
            if m.get("type") == "volume":
                found.setdefault(m["source"], set()).add(f"container {name}")
    from berth.deployments import records as deployments

    for dep in deployments.names():
        for number, revision in ((deployments.get(dep) or {}).get("revisions") or {}).items():
            for role in (revision.get("content") or {}).get("roles") or []:
                for m in (role.get("container") or {}).get("mounts") or []:
                    if m.get("type") == "volume":
                        found.setdefault(m["source"], set()).add(f"deployment {dep} revision {number}")
    return {name: sorted(held) for name, held in found.items()}


def observe() -> list[Volume]:
    held = users()
    out = []
    for name in names():
        try:
            created = read_json(root() / name / METADATA).get("created_at")
        except (OSError, ValueError, AttributeError):
            created = None  # made by a runtime from before volume.json
        out.append(Volume(name, created, held.get(name, [])))
    return out


def ensure(name: str) -> bool:
    """Make volume `name` unless it is there (a container's create); True if it was made."""
    if (root() / name / "data").is_dir():
        return False
    root().mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".new-{name}-", dir=root()))
    try:
        staging.chmod(0o755)
        (staging / "data").mkdir(mode=0o755)
        # fresh: no container has mounted it yet (the first one copies the image's files up)
        atomic_write_json(staging / METADATA, {"name": name, "created_at": _now(), "fresh": True})
        try:
            staging.rename(root() / name)
        except OSError:  # made meanwhile (or a leftover without data: removed by the next prune)
            return False
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def copy_up(name: str, layers: list[str], target: str) -> bool:
    """Fill volume `name`, on its first mount, with what the image has at `target`, as podman's
    and docker's named volumes start: owners, modes, links and xattrs as in the image.

    Only a fresh volume (never mounted, still empty) is filled, once. The image's files are
    written as a tar from the merged view of `layers` (top first), whiteouts applied, and
    unpacked by the layer extractor into a directory beside the volume's, renamed into place:
    a failure leaves the volume empty and fresh. True if anything was copied.
    """
    meta_path, data = root() / name / METADATA, path_of(name)
    try:
        meta = read_json(meta_path)
    except (OSError, ValueError):
        return False  # made by an older runtime: never fresh
    if not meta.get("fresh"):
        return False
    copied = False
    if not any(data.iterdir()):
        copied = _copy_image_dir(layers, target, data)
    atomic_write_json(meta_path, {**meta, "fresh": False})
    return copied


def _copy_image_dir(layers: list[str], target: str, data: Path) -> bool:
    from berth.images.extract import ExtractPolicy, extract_layer
    from berth.images.layers import tar_writer
    from berth.images.stagefs import StageTree

    tree = StageTree([Path(layer) for layer in reversed(layers)])
    path = tree.resolve(target)
    if path == "/" or not tree.is_dir(path) or not tree.listdir(path):
        return False
    staging = data.with_name("data.copy-up")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o755)
    try:
        with tempfile.TemporaryFile(dir=data.parent) as fh:
            with tar_writer(fh) as tf:
                tree.add_tree(tf, path, "", None, None, None, set(), {})
            fh.seek(0)
            extract_layer(fh, staging, ExtractPolicy(whiteouts=False))
        top = tree.lstat_path(path)  # the volume's root takes the image directory's owner and mode
        if top is not None:
            os.chown(staging, top.st_uid, top.st_gid)
            staging.chmod(stat.S_IMODE(top.st_mode))
        data.rmdir()  # empty (checked by the caller, under the containers lock)
        staging.rename(data)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return True


# -- plans ----------------------------------------------------------------------------------------
def plan_create(name: str, observed: list[Volume]) -> list[Action]:
    validate_volume_name(name)
    return [] if any(v.name == name for v in observed) else [Action("create-volume", name)]


def plan_remove(wanted: list[str], observed: list[Volume]) -> list[Action]:
    by_name = {v.name: v for v in observed}
    actions = []
    for name in wanted:
        validate_volume_name(name)
        volume = by_name.get(name)
        if volume is None:
            raise NotFound(f"no volume named {name!r}", volume=name)
        if volume.users:
            raise Conflict(
                f"volume {name} is in use by {', '.join(volume.users)}: remove those first", volume=name
            )
        actions.append(Action("remove-volume", name))
    return actions


def plan_state(name: str, state: str, observed: list[Volume]) -> list[Action]:
    """Declarative (the volume module): `present` makes it, `absent` removes it unless in use."""
    if state not in ("present", "absent"):
        raise InvalidInput(f"volume state {state!r} is not present or absent")
    if state == "present":
        return plan_create(name, observed)
    validate_volume_name(name)
    return plan_remove([name], observed) if any(v.name == name for v in observed) else []


def plan_prune(observed: list[Volume]) -> list[Action]:
    actions = [Action("remove-volume", v.name, {"reason": "unused"}) for v in observed if not v.users]
    # What a killed create (.new-) or remove (.gone-) left, and directories that are no volume.
    debris = sorted(
        e for e in _entries() if e.startswith((".new-", ".gone-")) or not (root() / e / "data").is_dir()
    )
    return actions + [
        Action("remove-debris", e, {"reason": "left by a killed create or remove"}) for e in debris
    ]


def apply(actions: list[Action]) -> list[Action]:
    def create(action: Action) -> None:
        ensure(action.target)

    def remove(action: Action) -> None:
        # Renamed out of the way first: a half-removed volume is never mounted by a later create.
        gone = root() / f".gone-{action.target}-{os.getpid()}"
        (root() / action.target).rename(gone)
        shutil.rmtree(gone)

    def remove_debris(action: Action) -> None:
        shutil.rmtree(root() / action.target)

    handlers = {"create-volume": create, "remove-volume": remove, "remove-debris": remove_debris}
    return plans.apply(actions, handlers)


def converge(
    plan: Callable[[list[Volume]], list[Action]], check: bool = False
) -> tuple[list[Action], list[Action], list[Volume]]:
    """Plan with `plan(observed)` and apply it under the containers lock: (planned, applied,
    observed before)."""
    with records.locked():
        observed = observe()
        planned = plan(observed)
        applied = [] if check else apply(planned)
    return planned, applied, observed


def _entries() -> list[str]:
    try:
        return os.listdir(root())
    except FileNotFoundError:
        return []


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
