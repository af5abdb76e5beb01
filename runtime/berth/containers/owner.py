"""Containers that live only as long as the process that made them: a build's RUN steps.

`berth image build` runs each RUN step in a container and removes it when the step ends; killed
in between (SIGKILL, OOM, a lost SSH session), it cannot. So such a container's record names its
owner: PID, start time, boot and PID namespace, which together name one process for the life of
the host (a PID reused later has another start time). The next command that reaps (`image build`,
`image prune`, `restore`) removes the containers whose owner is gone, through the ordinary remove
path; a live owner's containers are never touched, and neither is one this PID namespace cannot
judge (its owner ran in another one).

Finding orphans is a scan of records and /proc: no lock, no D-Bus, cheap enough for every build.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from berth.containers import records
from berth.host import boot_identity, pid_namespace, process_start
from berth.state.store import data_dir

if TYPE_CHECKING:
    from berth.plan import Action

ALIVE, GONE, UNKNOWN = "alive", "gone", "unknown"
# Step containers are named build-<hex>: a directory of that name without a record is what a
# builder killed inside `create` (or inside the remove of its step) left, and nothing else.
STEP_PREFIX = "build-"


def current() -> dict[str, Any]:
    """This process as the owner of the containers it is about to make."""
    pid = os.getpid()
    return {"pid": pid, "start": process_start(pid), "boot": boot_identity(), "pidns": pid_namespace()}


def status(owner: Any) -> str:
    """Whether the process `owner` names still runs: ALIVE, GONE, or UNKNOWN (cannot tell from here)."""
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int) or not owner.get("start"):
        return UNKNOWN
    if owner.get("boot") != boot_identity():
        return GONE  # every process of an earlier boot is
    if owner.get("pidns") != pid_namespace():
        return UNKNOWN
    return ALIVE if process_start(owner["pid"]) == owner["start"] else GONE


def orphans() -> list[str]:
    """Containers whose owner is gone (read without the lock: check again under it)."""
    out = []
    for name in records.names():
        record = records.get(name)
        if record is not None and "owner" in record and status(record["owner"]) == GONE:
            out.append(name)
    return out


def debris() -> list[str]:
    """Step containers' directories without a record (check again under the containers lock)."""
    root = data_dir() / "containers"
    try:
        entries = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(
        e
        for e in entries
        if e.startswith(STEP_PREFIX) and (root / e).is_dir() and not (root / e / "record.json").exists()
    )


def reap(check: bool = False) -> tuple[list[Action], list[str]]:
    """Remove orphans (see `Containers.reap_orphans`): the actions (planned, in check mode) and warnings.

    The container manager and D-Bus are only loaded when there is something to reap.
    """
    if not orphans() and not debris():
        return [], []
    from berth.containers.manager import Containers

    containers = Containers()
    try:
        outcome = containers.reap_orphans(check)
    finally:
        containers.close()
    return (outcome.planned if check else outcome.applied), outcome.warnings
