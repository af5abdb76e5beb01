"""Pipelined D-Bus calls (`Connection.call_many`, behind `berth ps`): replies in the order of the
calls, errors per call, more calls than one chunk, against a private dbus-daemon; and
`observe_all` joins systemd's unit listing with the records as `observe` does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from berth import errors
from berth.containers import observe as observe_mod
from berth.systemd import wire
from berth.systemd.status import UnitListEntry

DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")


def test_call_many_answers_in_order_with_errors_per_call(bus: str) -> None:
    conn = wire.Connection.open(bus, "the test bus")
    try:
        calls: list[tuple[str, str, str, str, str, Sequence[Any]]] = []
        for i in range(wire.PIPELINE_CHUNK * 2 + 7):  # three chunks, the last one short
            if i % 5 == 0:  # nobody owns this name: an error for this call alone
                calls.append((*DBUS, "GetNameOwner", "s", [f"org.example.Nobody{i}"]))
            else:
                calls.append((*DBUS, "NameHasOwner", "s", ["org.freedesktop.DBus"]))
        replies = conn.call_many(calls)
        assert len(replies) == len(calls)
        for i, reply in enumerate(replies):
            if i % 5 == 0:
                assert isinstance(reply, errors.BerthError)
                assert reply.details["dbus_error"] == "org.freedesktop.DBus.Error.NameHasNoOwner"
            else:
                assert reply == [True]
        assert conn.call_many([]) == []
        assert "org.freedesktop.DBus" in conn.call(*DBUS, "ListNames")[0]  # the connection is in step
    finally:
        conn.close()


class FakeSystemd:
    """The two calls observe_all makes; counts them (one listing, one batch of Gets)."""

    def __init__(self, units: list[UnitListEntry], pids: dict[str, int]) -> None:
        self.units, self.pids = units, pids
        self.calls: list[str] = []

    def list_units(self, patterns: Sequence[str], states: Sequence[str] = ()) -> list[UnitListEntry]:
        self.calls.append(f"list {patterns[0]}")
        return self.units

    def property_values(self, paths: Sequence[str], interface: str, names: Sequence[str]) -> list[Any]:
        self.calls.append(f"get {len(paths)}")
        return [
            None if p not in self.pids else {"MainPID": self.pids[p], "ControlGroup": f"/x{p}"} for p in paths
        ]


def test_observe_all_joins_the_listing_with_the_records(monkeypatch: pytest.MonkeyPatch) -> None:
    recs = {n: {"name": n, "status": "running", "spec_hash": "h"} for n in ("a", "b", "c", "d")}
    monkeypatch.setattr(observe_mod.records, "get", recs.get)
    units = [
        UnitListEntry("berth-a.service", "", "loaded", "active", "running", "/u/a"),
        UnitListEntry("berth-b.service", "", "loaded", "failed", "failed", "/u/b"),
        UnitListEntry("berth-c.service", "", "loaded", "active", "running", "/u/c"),  # gone before its Get
        UnitListEntry("berth-other.service", "", "loaded", "active", "running", "/u/o"),
    ]
    sd = FakeSystemd(units, {"/u/a": 41})
    seen = {o.name: o for o in observe_mod.observe_all(sd, ["a", "b", "c", "d"])}  # type: ignore[arg-type]
    assert sd.calls == ["list berth-*.service", "get 2"]
    assert (seen["a"].status, seen["a"].live.main_pid, seen["a"].live.control_group) == (
        "running",
        41,
        "/x/u/a",
    )
    assert (seen["b"].status, seen["b"].live.main_pid) == ("exited", 0)
    assert (seen["c"].status, seen["c"].live.main_pid) == ("running", 0)
    assert seen["d"].live.load_state == "not-loaded" and seen["d"].status == "exited"
    assert seen["d"].record == recs["d"]
