"""The liveness monitor's counting: grace after a start, failures in a row, the action at the
threshold, and what it records. systemd and the probe are stand-ins (pure logic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from berth.deployments import monitor as m
from berth.deployments.health import parse_health
from berth.deployments.liveness import parse_liveness
from berth.deployments.probes import ProbeResult
from berth.systemd.status import UnitState


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def unit(state: str = "active", invocation: str = "a") -> UnitState:
    return UnitState("berth-shop-1-web.service", "loaded", state, "running", main_pid=42,
                     properties={"InvocationID": invocation}, invocation_id=invocation)  # fmt: skip


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    monkeypatch.setenv("BERTH_DATA_DIR", str(tmp_path))
    w: dict[str, Any] = {"unit": unit(), "results": [], "restarts": 0}
    monkeypatch.setattr(m, "live_state", lambda _sd, _name: w["unit"])
    monkeypatch.setattr(m, "probe", lambda *_a: w["results"].pop(0))
    return w


def watch(mon: m.Monitor, action: str, start_period: str = "0s") -> m.Watch:
    live = parse_liveness({"failures": 2, "action": action, "start_period": start_period},
                          parse_health({"tcp": 80}, "h"), "l")  # fmt: skip
    assert live is not None
    return m.Watch("web", "shop-1-web", live, [], state=mon.roles)


def test_failures_in_a_row_trigger_the_action_none_records(world: dict[str, Any]) -> None:
    mon = m.Monitor("shop", 1, systemd=object(), clock=Clock())  # type: ignore[arg-type]
    w = watch(mon, "none")
    world["results"] = [ProbeResult(False, "refused"), ProbeResult(True, "ok"), ProbeResult(False, "refused"),
                        ProbeResult(False, "refused\n  twice"), ProbeResult(False, "refused")]  # fmt: skip
    assert [mon.check(w) for _ in range(5)] == [True, True, True, True, True]
    s = mon.roles["web"]
    assert s["probes"] == 5 and s["failed_total"] == 4 and s["failures"] == 3 and s["restarts"] == 0
    assert s["last_failure"]["output"] == "refused" and "refused twice" in str(mon.events)  # one line
    assert [(e["action"], e["result"], e["failures"]) for e in mon.events] == [("none", "recorded", 2)]


def test_grace_after_a_start_and_no_probe_while_activating(world: dict[str, Any]) -> None:
    clock = Clock()
    mon = m.Monitor("shop", 1, systemd=object(), clock=clock)  # type: ignore[arg-type]
    w = watch(mon, "restart", start_period="5s")
    restarted: list[str] = []
    mon.restart = lambda watch: restarted.append(watch.container)  # type: ignore[method-assign]
    world["results"] = [ProbeResult(False, "refused")] * 4
    assert mon.check(w) is False and mon.roles["web"]["failures"] == 0  # within the grace
    clock.t += 6
    world["unit"] = unit("activating")
    assert mon.check(w) is False and len(world["results"]) == 3  # not probed
    world["unit"] = unit("active", invocation="b")  # systemd restarted it: grace again
    assert mon.check(w) is False
    clock.t += 6
    mon.check(w)
    mon.check(w)
    assert restarted == ["shop-1-web"]
    s = mon.roles["web"]
    assert s["restarts"] == 1 and s["failures"] == 0 and mon.events[-1]["result"] == "restarted"


def test_a_stopped_container_counts_as_failed(world: dict[str, Any]) -> None:
    mon = m.Monitor("shop", 1, systemd=object(), clock=Clock())  # type: ignore[arg-type]
    world["unit"] = UnitState("berth-shop-1-web.service", "loaded", "failed", "failed")
    mon.check(w := watch(mon, "none"))
    assert mon.roles["web"]["last"] == {**mon.roles["web"]["last"], "ok": False,
                                        "output": "container is not running (failed/failed)"}  # fmt: skip
    assert w.invocation is None
