"""plan_stop and plan_remove: what `berth stop -t` and `berth rm -f [-t]` ask of systemd."""

from __future__ import annotations

import pytest

from berth.containers.observe import Observed
from berth.containers.plan import plan, plan_remove, plan_stop
from berth.errors import Conflict
from berth.systemd.status import UnitState


def observed(running: bool, exists: bool = True) -> Observed:
    state = "active" if running else "inactive"
    live = UnitState("berth-c.service", "loaded" if running else "not-loaded", state, "running")
    return Observed("c", {"name": "c", "status": "running", "spec_hash": "h"} if exists else None, live)


def test_rm_f_of_a_running_container_stops_it_with_the_timeout_given() -> None:
    actions = plan_remove(observed(True), force=True, timeout=0)
    assert [(a.kind, dict(a.detail)) for a in actions] == [("stop", {"timeout": 0}), ("remove", {})]


def test_without_a_timeout_the_stop_is_systemds_own() -> None:
    assert [dict(a.detail) for a in plan_stop(observed(True))] == [{}]
    # The declarative absent state keeps the graceful stop (same actions as before).
    assert plan_remove(observed(True), force=True) == plan(None, "absent", observed(True))


def test_a_stopped_container_is_removed_without_a_stop() -> None:
    assert [a.kind for a in plan_remove(observed(False), force=True, timeout=0)] == ["remove"]
    assert plan_stop(observed(False), 0) == []


def test_rm_without_force_refuses_a_running_container() -> None:
    with pytest.raises(Conflict, match="running"):
        plan_remove(observed(True), force=False)
