"""plan(desired, observed): the decisions, table-driven. Pure: no systemd, no files."""

from __future__ import annotations

from typing import Any

import pytest

from berth.systemd.status import UnitState
from berth.units.observe import Observed
from berth.units.plan import plan
from berth.units.records import UnitRecord
from berth.units.spec import MARKER_ENV, UnitSpec, parse_spec

NAME = "web.service"
STARTED = parse_spec({"name": "web", "command": ["/bin/sleep", "infinity"]})
CHANGED = parse_spec({"name": "web", "command": ["/bin/sleep", "1000"]})
H, H2 = STARTED.spec_hash, CHANGED.spec_hash
STOPPED, ABSENT = STARTED.with_state("stopped"), STARTED.with_state("absent")
STOP2 = CHANGED.with_state("stopped")
REC, FORGET = ("record", None), ("forget", None)


def record(spec: UnitSpec = STARTED, state: str = "started") -> UnitRecord:
    s = spec.with_state(state)
    return UnitRecord(NAME, s.to_json(), s.spec_hash)


def live(active: str | None, marker: str | None = None) -> UnitState:
    if active is None:
        return UnitState.not_loaded(NAME)
    env = (f"{MARKER_ENV}={marker}",) if marker else ()
    return UnitState(NAME, "loaded", active, "x", environment=env)


# (id, desired, record, live, expected [(kind, reason)])
CASES: list[tuple[str, UnitSpec, UnitRecord | None, UnitState, list[tuple[str, Any]]]] = [
    # started
    ("new", STARTED, None, live(None), [("start", "unit inactive"), REC]),
    ("record-but-gone", STARTED, record(), live(None), [("start", "unit inactive")]),
    ("inactive-loaded", STARTED, record(), live("inactive", H), [("start", "unit inactive")]),
    (
        "failed",
        STARTED,
        record(),
        live("failed", H),
        [("reset-failed", "unit failed"), ("start", "unit failed")],
    ),
    ("same", STARTED, record(), live("active", H), []),
    ("same-activating", STARTED, record(), live("activating", H), []),
    ("same-no-marker-record-decides", STARTED, record(), live("active"), []),
    (
        "changed",
        CHANGED,
        record(),
        live("active", H),
        [("stop", "spec changed"), ("start", "spec changed"), REC],
    ),
    (
        "marker-beats-record",
        STARTED,
        record(),
        live("active", H2),
        [("stop", "spec changed"), ("start", "spec changed")],
    ),
    ("orphan-running-same", STARTED, None, live("active", H), [REC]),
    (
        "orphan-running-unknown",
        STARTED,
        None,
        live("active"),
        [("stop", "spec changed"), ("start", "spec changed"), REC],
    ),
    ("was-stopped", STARTED, record(state="stopped"), live(None), [("start", "unit inactive"), REC]),
    # stopped
    ("stop-running", STOPPED, record(), live("active", H), [("stop", "state stopped"), REC]),
    ("stopped-already", STOPPED, record(state="stopped"), live(None), []),
    ("stopped-record-only", STOPPED, record(), live(None), [REC]),
    ("stopped-failed-kept", STOPPED, record(state="stopped"), live("failed", H), []),
    ("stop-other", STOP2, record(), live("active", H), [("stop", "state stopped"), REC]),
    # absent
    ("absent-running", ABSENT, record(), live("active", H), [("stop", "state absent"), FORGET]),
    ("absent-failed", ABSENT, record(), live("failed", H), [("reset-failed", "state absent"), FORGET]),
    ("absent-record-only", ABSENT, record(), live(None), [FORGET]),
    ("absent-nothing", ABSENT, None, live(None), []),
    ("absent-orphan", ABSENT, None, live("active", H), [("stop", "state absent")]),
]  # fmt: skip


@pytest.mark.parametrize("desired, rec, unit, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan(
    desired: UnitSpec, rec: UnitRecord | None, unit: UnitState, expected: list[tuple[str, Any]]
) -> None:
    actions = plan(desired, Observed(rec, unit))
    assert [(a.kind, a.detail.get("reason")) for a in actions] == expected
    assert all(a.target == NAME for a in actions)


def test_start_carries_the_new_and_previous_hash() -> None:
    actions = plan(CHANGED, Observed(record(), live("active", H)))
    start = next(a for a in actions if a.kind == "start")
    assert start.detail["spec_hash"] == H2
    assert start.detail["previous_hash"] == H


def test_record_carries_hash_and_state() -> None:
    actions = plan(STARTED.with_state("stopped"), Observed(record(), live(None)))
    assert actions[-1].to_json() == {
        "action": "record",
        "target": NAME,
        "detail": {"spec_hash": H, "state": "stopped"},
    }


@pytest.mark.parametrize(
    "rec, unit, state",
    [
        (None, live(None), None),
        (record(), live(None), "stopped"),
        (record(), live("active", H), "started"),
        (None, live("inactive"), "stopped"),
        (record(), live("failed"), "failed"),
    ],
)
def test_observed_state_in_spec_words(rec: UnitRecord | None, unit: UnitState, state: str | None) -> None:
    assert Observed(rec, unit).state == state
