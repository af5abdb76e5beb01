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
        atomic_write_json(staging / METADATA, {"name": name, "created_at": _now()})
        try:
            staging.rename(root() / name)
        except OSError:  # made meanwhile (or a leftover without data: removed by the next prune)
            return False
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
