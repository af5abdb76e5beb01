"""sd_notify relay filtering, notify and liveness specs, and where the monitor is started and
stopped in deployment plans: pure logic, no host."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from berth.containers.spec import parse_spec
from berth.deployments import revision as rv
from berth.deployments.health import parse_health
from berth.deployments.liveness import Liveness, parse_liveness
from berth.deployments.plan import Running, plan_deploy, plan_recover, plan_rollback
from berth.deployments.spec import parse_deployment
from berth.errors import InvalidInput
from berth.shim.notify import filtered

SETTINGS = {"strategy": "start-first", "keep": 3, "drain": 0}
LIVENESS = {"probe": {}, "failures": 3, "action": "restart"}


def rev(n: int, state: str, h: str, liveness: bool = True) -> dict[str, Any]:
    role: dict[str, Any] = {"role": "web", "ports": []}
    if liveness:
        role["liveness"] = LIVENESS
    return {"number": n, "state": state, "hash": h, "served": True, "containers": {"web": f"shop-{n}-web"},
            "content": {"roles": [role]}}  # fmt: skip


def record(*revs: dict[str, Any], current: int | None, op: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "shop", "settings": SETTINGS, "current": current, "next": 10, "operation": op,
            "revisions": {str(r["number"]): r for r in revs}}  # fmt: skip


def running(*ns: int, monitor: int | None = None) -> Running:
    return Running(frozenset(f"shop-{n}-web" for n in ns), {}, monitor)


def kinds(actions: list[Any]) -> list[str]:
    return [a.kind for a in actions]


# -- the relay ---------------------------------------------------------------------------------
def test_relay_passes_readiness_and_status_and_drops_the_rest() -> None:
    message, ready = filtered(b"STATUS=warming up\nMAINPID=1\nREADY=1\nFDSTORE=1\nWATCHDOG=1\n")
    assert message == "STATUS=warming up\nREADY=1\n" and ready
    assert filtered(b"STATUS=still starting\nEXTEND_TIMEOUT_USEC=5000000") == (
        "STATUS=still starting\nEXTEND_TIMEOUT_USEC=5000000\n",
        False,
    )
    assert filtered(b"MAINPID=4242") == ("", False)
    assert filtered(b"READY=10\n") == ("READY=10\n", False)  # only READY=1 means ready
    assert filtered(b"\xff\xfeREADY=1") == ("", False)  # not UTF-8: nothing of it


def test_sdnotify_is_in_the_spec_hash_only_when_set() -> None:
    plain = parse_spec({"name": "a", "rootfs": "/r", "command": ["true"]})
    notify = parse_spec({"name": "a", "rootfs": "/r", "command": ["true"], "sdnotify": "container",
                         "start_timeout": 5})  # fmt: skip
    assert "sdnotify" not in plain.to_json() and notify.to_json()["sdnotify"] == "container"
    assert plain.spec_hash != notify.spec_hash
    assert type(notify).from_json(notify.to_json()) == notify
    with pytest.raises(InvalidInput, match="sdnotify"):
        parse_spec({"name": "a", "rootfs": "/r", "command": ["true"], "sdnotify": "conmon"})


# -- specs -------------------------------------------------------------------------------------
def test_notify_health_makes_the_container_wait_for_ready() -> None:
    doc = {
        "name": "q",
        "containers": [{"role": "w", "image": "q:1", "health": {"notify": True, "deadline": "2.5s"}}],
    }
    role = parse_deployment(doc).roles[0]
    assert role.health.kind == "notify"
    assert role.spec.sdnotify == "container" and role.spec.start_timeout == 3
    with pytest.raises(InvalidInput, match="not http and notify"):
        parse_health({"http": 80, "notify": True}, "h")
    with pytest.raises(InvalidInput, match="notify: true"):
        parse_health({"notify": "yes"}, "h")
    bad = {**doc["containers"][0], "sdnotify": "runtime"}  # type: ignore[dict-item]
    with pytest.raises(InvalidInput, match="needs sdnotify: container"):
        parse_deployment({**doc, "containers": [bad]})


def test_liveness_reuses_the_health_probe_or_takes_its_own() -> None:
    health = parse_health({"http": {"port": 80, "path": "/ready"}, "interval": "100ms"}, "h")
    live = parse_liveness({"failures": 2, "interval": "5s"}, health, "l")
    assert live is not None and live.probe.kind == "http" and live.probe.path == "/ready"
    assert live.probe.interval == 5.0 and live.failures == 2 and live.action == "restart"
    own = parse_liveness({"tcp": 81, "action": "none"}, health, "l")
    assert own is not None and own.probe.kind == "tcp" and own.probe.port == 81 and own.action == "none"
    assert Liveness.from_json(own.to_json()) == own
    assert parse_liveness(True, health, "l") == replace(live, failures=3, probe=replace(
        live.probe, interval=10.0, retries=3))  # fmt: skip
    assert parse_liveness(None, health, "l") is None


@pytest.mark.parametrize(
    ("doc", "health", "error"),
    [
        ({"action": "kill"}, {"tcp": 80}, "is not restart or none"),
        ({"failures": 0}, {"tcp": 80}, "is not a number from 1 to 1000"),
        ({"intervall": "1s"}, {"tcp": 80}, "unknown field 'intervall'"),
        ({}, None, "give a probe"),
        ({}, {"notify": True}, r"health check \(notify\) has none to reuse"),
        ({"interval": 0}, {"tcp": 80}, "greater than 0"),
    ],
)
def test_liveness_refusals(doc: dict[str, Any], health: dict[str, Any] | None, error: str) -> None:
    with pytest.raises(InvalidInput, match=error):
        parse_liveness(doc, parse_health(health, "h"), "containers.0.liveness")


def test_liveness_is_revision_content_only_when_set() -> None:
    base = {"name": "s", "containers": [{"role": "w", "image": "s:1", "health": {"tcp": 80}}]}
    assert "liveness" not in parse_deployment(base).roles[0].to_json()
    live = {**base, "containers": [{**base["containers"][0], "liveness": {"action": "none"}}]}  # type: ignore[dict-item]
    assert parse_deployment(live).roles[0].to_json()["liveness"]["action"] == "none"


# -- plans -------------------------------------------------------------------------------------
def test_deploy_stops_the_monitor_first_and_starts_the_new_revisions_last() -> None:
    r = record(rev(1, rv.ACTIVE, "a"), current=1)
    target, actions = plan_deploy(r, "b", SETTINGS, running(1, monitor=1), liveness=True)
    assert target == 10
    assert kinds(actions)[0] == "stop-monitor" and kinds(actions)[-1] == "start-monitor"
    assert actions[-1].detail == {"revision": 10}
    _, without = plan_deploy(r, "b", SETTINGS, running(1, monitor=1), liveness=False)
    assert kinds(without)[0] == "stop-monitor" and "start-monitor" not in kinds(without)
    assert plan_deploy(r, "a", SETTINGS, running(1, monitor=1), liveness=True) == (None, [])


def test_rollback_moves_the_monitor_to_the_target() -> None:
    r = record(rev(1, rv.RETIRED, "a"), rev(2, rv.ACTIVE, "b"), current=2)
    _, actions = plan_rollback(r, None, running(2, monitor=2))
    assert kinds(actions)[0] == "stop-monitor" and actions[-1].kind == "start-monitor"
    assert actions[-1].detail == {"revision": 1}


def test_recovery_restores_or_replaces_the_monitor() -> None:
    steady = record(rev(1, rv.ACTIVE, "a"), current=1)
    assert plan_recover(steady, running(1, monitor=1)) == []
    assert kinds(plan_recover(steady, running(1))) == ["start-monitor"]  # at boot
    stale = record(rev(1, rv.RETIRED, "a"), rev(2, rv.ACTIVE, "b"), current=2)
    assert kinds(plan_recover(stale, running(2, monitor=1))) == ["stop-monitor", "start-monitor"]
    unwatched = record(rev(1, rv.ACTIVE, "a", liveness=False), current=1)
    assert kinds(plan_recover(unwatched, running(1, monitor=1))) == ["stop-monitor"]
    # A deploy that failed before the commit point: back on 1, its monitor again.
    op = {"kind": "deploy", "target": 2, "previous": 1, "step": "gate"}
    failed = record(rev(1, rv.ACTIVE, "a"), rev(2, rv.CHECKING, "b"), current=1, op=op)
    actions = plan_recover(failed, running(1, 2))
    assert kinds(actions)[-2:] == ["start-monitor", "close-operation"]
    assert actions[-2].detail == {"revision": 1}
