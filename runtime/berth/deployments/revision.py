"""The revision state machine. Every state is written (atomically) before the step it names runs.

    pending -> created -> starting -> checking -> healthy -> switching -> active -> retired
    retired -> starting (a rollback brings a kept revision back)       any kept -> pruned
    pending|created|starting|checking|healthy -> failed (never served) | retired (served before)

`switching` is the commit point of a deploy: a revision that reached it passed its gate, so a run
that finds it after a crash or a reboot finishes the switch (rolls forward); a revision found in
any earlier state never served this deploy, so the run goes back to the last healthy revision.
"""

from __future__ import annotations

import time
from typing import Any

from berth.errors import Conflict

PENDING, CREATED, STARTING, CHECKING, HEALTHY = "pending", "created", "starting", "checking", "healthy"
SWITCHING, ACTIVE, RETIRED, FAILED, PRUNED = "switching", "active", "retired", "failed", "pruned"

BEFORE_COMMIT = frozenset({PENDING, CREATED, STARTING, CHECKING, HEALTHY})
COMMITTED = frozenset({SWITCHING, ACTIVE})
KEPT = frozenset({ACTIVE, RETIRED})  # what a rollback can go back to; their images are protected

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({CREATED, FAILED, RETIRED}),
    CREATED: frozenset({STARTING, FAILED, RETIRED}),
    STARTING: frozenset({CHECKING, FAILED, RETIRED}),
    CHECKING: frozenset({HEALTHY, FAILED, RETIRED}),
    HEALTHY: frozenset({SWITCHING, FAILED, RETIRED}),
    SWITCHING: frozenset({ACTIVE}),
    ACTIVE: frozenset({RETIRED}),
    RETIRED: frozenset({STARTING, PRUNED}),
    FAILED: frozenset({PRUNED}),
    PRUNED: frozenset(),
}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def advance(revision: dict[str, Any], new: str, **facts: Any) -> None:
    """Move `revision` to `new` (in memory: the caller writes the record before acting)."""
    old = revision["state"]
    if new not in TRANSITIONS[old]:
        raise Conflict(f"revision {revision['number']} is {old}; it cannot become {new}")
    revision["state"] = new
    revision.setdefault("states", []).append({"state": new, "at": now(), **facts})


def abandoned_state(revision: dict[str, Any]) -> str:
    """Where a revision goes when its deploy or rollback is abandoned before the commit point."""
    return RETIRED if revision.get("served") else FAILED
