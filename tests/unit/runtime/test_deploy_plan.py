"""Deployment planning and health specs: pure logic, no host."""

from __future__ import annotations

from typing import Any

import pytest

from berth.deployments import revision as rv
from berth.deployments.health import from_image, parse_health
from berth.deployments.plan import Running, plan_deploy, plan_recover, plan_rollback
from berth.errors import InvalidInput

SETTINGS = {"strategy": "start-first", "keep": 2, "drain": 0.5}


def rev(n: int, state: str, h: str, served: bool = True) -> dict[str, Any]:
    return {
        "number": n, "state": state, "hash": h, "served": served,
        "containers": {"web": f"shop-{n}-web"},
        "content": {"roles": [{"role": "web", "ports": [{"protocol": "tcp", "host_port": 8080,
                                                          "container_port": 80}]}]},
    }  # fmt: skip


def record(*revs: dict[str, Any], current: int | None, op: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": "shop", "settings": SETTINGS, "current": current, "next": 10, "operation": op,
        "revisions": {str(r["number"]): r for r in revs},
    }  # fmt: skip


def serving(n: int) -> Running:
    return Running(frozenset({f"shop-{n}-web"}), {"*:8080/tcp": f"shop-{n}-web"})


def kinds(actions: list[Any]) -> list[str]:
    return [a.kind for a in actions]


def test_same_content_is_a_no_op() -> None:
    target, actions = plan_deploy(record(rev(1, rv.ACTIVE, "a"), current=1), "a", SETTINGS, serving(1))
    assert target is None and actions == []


def test_start_first_then_prune_beyond_keep() -> None:
    rec = record(rev(1, rv.RETIRED, "x"), rev(2, rv.RETIRED, "y"), rev(3, rv.ACTIVE, "z"), current=3)
    target, actions = plan_deploy(rec, "new", SETTINGS, serving(3))
    assert target == 10
    steps = [
        "create-revision",
        "create-containers",
        "start-revision",
        "gate",
        "switch-traffic",
        "stop-revision",
    ]
    assert kinds(actions) == [*steps, "prune-revision", "prune-revision"]
    assert [a.detail["revision"] for a in actions if a.kind == "prune-revision"] == [1, 2]


def test_stop_first_stops_the_old_revision_before_starting() -> None:
    rec = record(rev(1, rv.ACTIVE, "x"), current=1)
    _, actions = plan_deploy(rec, "new", {**SETTINGS, "strategy": "stop-first"}, serving(1))
    assert kinds(actions)[2:5] == ["stop-revision", "start-revision", "gate"]


def test_content_of_a_kept_revision_reactivates_it() -> None:
    rec = record(rev(1, rv.RETIRED, "x"), rev(2, rv.ACTIVE, "y"), current=2)
    target, actions = plan_deploy(rec, "x", SETTINGS, serving(2))
    assert target == 1 and "create-revision" not in kinds(actions)


def test_rollback_defaults_to_the_previous_kept_revision() -> None:
    rec = record(rev(1, rv.RETIRED, "x"), rev(2, rv.FAILED, "y", False), rev(3, rv.ACTIVE, "z"), current=3)
    target, actions = plan_rollback(rec, None, serving(3))
    assert target == 1 and kinds(actions) == ["start-revision", "gate", "switch-traffic", "stop-revision"]


@pytest.mark.parametrize("state", [rv.PENDING, rv.CREATED, rv.STARTING, rv.CHECKING, rv.HEALTHY])
def test_recovery_before_the_commit_point_goes_back(state: str) -> None:
    op = {"kind": "deploy", "target": 2, "previous": 1, "step": "gate"}
    rec = record(rev(1, rv.ACTIVE, "x"), rev(2, state, "y", False), current=1, op=op)
    both = Running(frozenset({"shop-1-web", "shop-2-web"}), {"*:8080/tcp": "shop-1-web"})
    actions = plan_recover(rec, both)
    assert kinds(actions) == ["stop-revision", "abandon-revision", "close-operation"]
    assert actions[-1].detail["result"] == "rolled-back"


@pytest.mark.parametrize("state", [rv.SWITCHING, rv.ACTIVE])
def test_recovery_from_the_commit_point_goes_forward(state: str) -> None:
    op = {"kind": "deploy", "target": 2, "previous": 1, "step": "switch-traffic"}
    old = rv.ACTIVE if state == rv.SWITCHING else rv.RETIRED
    rec = record(rev(1, old, "x"), rev(2, state, "y"), current=1 if state == rv.SWITCHING else 2, op=op)
    after_reboot = Running(frozenset(), {})
    actions = plan_recover(rec, after_reboot)
    assert kinds(actions) == ["start-revision", "switch-traffic", "close-operation"]
    assert actions[0].detail["revision"] == 2


def test_after_a_reboot_the_active_revision_serves_again() -> None:
    rec = record(rev(1, rv.RETIRED, "x"), rev(2, rv.ACTIVE, "y"), current=2)
    assert kinds(plan_recover(rec, Running(frozenset(), {}))) == ["start-revision", "switch-traffic"]
    assert plan_recover(rec, serving(2)) == []


def test_health_specs() -> None:
    h = parse_health({"http": {"port": 80, "status": "200-299"}, "interval": "200ms", "retries": 2}, "h")
    assert (h.kind, h.port, h.status, h.interval, h.retries) == ("http", 80, (200, 299), 0.2, 2)
    with pytest.raises(InvalidInput):
        parse_health({"http": {"port": 80}, "tcp": 80}, "h")
    image = from_image(parse_health({"image": True, "interval": 1}, "h"),
                       {"Healthcheck": {"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 30 * 10**9,
                                        "Retries": 5}})  # fmt: skip
    assert image.kind == "exec" and image.command[:2] == ("/bin/sh", "-c") and image.interval == 1
    assert image.retries == 5
