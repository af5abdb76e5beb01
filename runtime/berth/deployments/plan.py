"""plan(desired, observed) -> actions for a deployment. Pure: no I/O, no clock.

`observed` is the deployment record plus what is running (`Running`): which containers run and
which container holds each service port. Three plans: deploy a revision, roll back to one, and
recover (finish or undo an operation a crash interrupted; after a boot, bring the active revision
back and point its ports at it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from berth.deployments import revision as rv
from berth.errors import Conflict, InvalidInput, NotFound
from berth.plan import Action


@dataclass(frozen=True)
class Running:
    containers: frozenset[str]  # containers of this deployment whose process runs
    holders: dict[str, str | None]  # port key -> container holding it
    monitor: int | None = None  # the revision a running liveness monitor watches


def monitored(rev: dict[str, Any] | None) -> bool:
    """Whether revision `rev` has a role with a liveness check (so a monitor must watch it)."""
    return rev is not None and any(role.get("liveness") for role in rev["content"]["roles"])


def _monitor(record: dict[str, Any], rev: dict[str, Any] | None, running: Running) -> list[Action]:
    """Make the liveness monitor watch `rev` (the revision that serves), or nothing."""
    name = record["name"]
    actions = []
    want = rev["number"] if rev is not None and monitored(rev) else None
    if running.monitor is not None and running.monitor != want:
        actions.append(Action("stop-monitor", name, {"revision": running.monitor}))
    if want is not None and running.monitor != want:
        actions.append(Action("start-monitor", f"{name}@{want}", {"revision": want}))
    return actions


def _stop_monitor(record: dict[str, Any], running: Running) -> list[Action]:
    """Before an operation: no monitor may probe (and restart) what it is replacing."""
    if running.monitor is None:
        return []
    return [Action("stop-monitor", record["name"], {"revision": running.monitor})]


def containers_of(rev: dict[str, Any]) -> list[str]:
    return sorted(rev["containers"].values())


def ports_of(rev: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for role in rev["content"]["roles"] for p in role["ports"]]


def all_running(rev: dict[str, Any], running: Running) -> bool:
    return all(c in running.containers for c in containers_of(rev))


def any_running(rev: dict[str, Any], running: Running) -> bool:
    return any(c in running.containers for c in containers_of(rev))


def serves(rev: dict[str, Any], running: Running) -> bool:
    """Every service port of `rev` points at its container."""
    for role in rev["content"]["roles"]:
        for p in role["ports"]:
            key = port_key(p)
            if running.holders.get(key) != rev["containers"][role["role"]]:
                return False
    return True


def port_key(p: dict[str, Any]) -> str:
    return f"{p.get('host_ip') or '*'}:{p['host_port']}/{p['protocol']}"


def _rev(record: dict[str, Any], number: int | None) -> dict[str, Any] | None:
    return None if number is None else record["revisions"].get(str(number))


def _prune(record: dict[str, Any], target: int, keep: int) -> list[Action]:
    """Revisions beyond `keep` (newest kept first, `target` always kept), and failed ones."""
    name = record["name"]
    kept = sorted(
        (int(n) for n, r in record["revisions"].items() if r["state"] in rv.KEPT or int(n) == target),
        reverse=True,
    )
    survivors = {target, *[n for n in kept if n != target][: keep - 1]}
    doomed = [int(n) for n, r in record["revisions"].items() if int(n) not in survivors and int(n) != target]
    doomed = [n for n in doomed if record["revisions"][str(n)]["state"] in (rv.RETIRED, rv.FAILED)]
    return [Action("prune-revision", f"{name}@{n}", {"revision": n}) for n in sorted(doomed)]


def plan_deploy(
    record: dict[str, Any],
    content_hash: str,
    settings: dict[str, Any],
    running: Running,
    liveness: bool = False,
) -> tuple[int | None, list[Action]]:
    """The target revision (None: nothing to do) and the actions that make it serve."""
    name = record["name"]
    current = _rev(record, record["current"])
    settings_action = (
        [Action("update-settings", name, {"settings": settings})] if settings != record["settings"] else []
    )
    if current is not None and current["hash"] == content_hash:
        return None, settings_action
    reuse = next(
        (
            int(n)
            for n, r in sorted(record["revisions"].items())
            if r["hash"] == content_hash and r["state"] == rv.RETIRED
        ),
        None,
    )
    target = reuse if reuse is not None else int(record["next"])
    t = f"{name}@{target}"
    actions: list[Action] = _stop_monitor(record, running)  # the settings go with the operation
    if reuse is None:
        actions += [
            Action("create-revision", t, {"revision": target, "hash": content_hash}),
            Action("create-containers", t, {"revision": target}),
        ]
    actions += _switch_to(record, target, current, settings, running, gate=True)
    actions += _prune(record, target, int(settings["keep"]))
    if liveness:
        actions.append(Action("start-monitor", t, {"revision": target}))
    return target, actions


def _switch_to(
    record: dict[str, Any],
    target: int,
    current: dict[str, Any] | None,
    settings: dict[str, Any],
    running: Running,
    gate: bool,
) -> list[Action]:
    name = record["name"]
    t = f"{name}@{target}"
    actions: list[Action] = []
    old = f"{name}@{current['number']}" if current is not None else None
    stop_first = settings.get("strategy") == "stop-first"
    if old is not None and stop_first and current is not None and any_running(current, running):
        actions.append(Action("stop-revision", old, {"revision": current["number"], "drain": 0}))
    actions.append(Action("start-revision", t, {"revision": target}))
    if gate:
        actions.append(Action("gate", t, {"revision": target}))
    actions.append(Action("switch-traffic", t, {"revision": target}))
    if old is not None and not stop_first and current is not None and any_running(current, running):
        actions.append(
            Action("stop-revision", old, {"revision": current["number"], "drain": settings.get("drain", 0)})
        )
    return actions


def plan_rollback(
    record: dict[str, Any], to: int | None, running: Running
) -> tuple[int | None, list[Action]]:
    """Back to revision `to` (default: the newest kept revision older than the current one)."""
    current = _rev(record, record["current"])
    kept = sorted(int(n) for n, r in record["revisions"].items() if r["state"] == rv.RETIRED)
    if to is None:
        older = [n for n in kept if current is None or n < current["number"]]
        if not older:
            raise NotFound(f"deployment {record['name']} has no earlier revision to roll back to")
        to = older[-1]
    target = _rev(record, to)
    if target is None or (target["state"] not in rv.KEPT):
        have = ", ".join(str(n) for n in kept) or "none"
        raise NotFound(f"deployment {record['name']} keeps no revision {to} (kept: {have})")
    if current is not None and current["number"] == to:
        if all_running(current, running) and serves(current, running):
            return None, []
        return to, plan_recover(record, running)
    settings = {**record["settings"], "strategy": "start-first"}  # the current one keeps serving
    actions = _stop_monitor(record, running) + _switch_to(record, to, current, settings, running, gate=True)
    if monitored(target):
        actions.append(Action("start-monitor", f"{record['name']}@{to}", {"revision": to}))
    return to, actions


def plan_recover(record: dict[str, Any], running: Running) -> list[Action]:
    """Finish or undo an interrupted operation; else make the active revision run and serve."""
    name = record["name"]
    op = record.get("operation")
    actions: list[Action] = []
    if op is not None:
        target = _rev(record, op["target"])
        previous = _rev(record, op.get("previous"))
        if target is not None and target["state"] in rv.COMMITTED:  # past the commit point: forward
            t = f"{name}@{target['number']}"
            if not all_running(target, running):
                actions.append(Action("start-revision", t, {"revision": target["number"]}))
            actions.append(Action("switch-traffic", t, {"revision": target["number"]}))
            if previous is not None and previous is not target and any_running(previous, running):
                actions.append(
                    Action(
                        "stop-revision",
                        f"{name}@{previous['number']}",
                        {"revision": previous["number"], "drain": 0},
                    )
                )
            actions += _monitor(record, target, running)
            return [*actions, Action("close-operation", name, {"result": "completed", "recovered": True})]
        if target is not None and target is not previous:
            t = f"{name}@{target['number']}"
            if any_running(target, running):
                actions.append(Action("stop-revision", t, {"revision": target["number"], "drain": 0}))
            if target["state"] not in rv.KEPT and target["state"] != rv.FAILED:
                actions.append(
                    Action("abandon-revision", t, {"revision": target["number"], "from": target["state"]})
                )
        actions += _serve(record, previous, running)
        actions += _monitor(record, previous, running)
        return [
            *actions,
            Action(
                "close-operation",
                name,
                {"result": "rolled-back", "recovered": True, "interrupted_at": op.get("step")},
            ),
        ]
    current = _rev(record, record["current"])
    actions += _serve(record, current, running)
    for n, r in sorted(record["revisions"].items()):
        if current is not None and r is current:
            continue
        if any_running(r, running):
            actions.append(Action("stop-revision", f"{name}@{n}", {"revision": int(n), "drain": 0}))
    return actions + _monitor(record, current, running)


def _serve(record: dict[str, Any], rev: dict[str, Any] | None, running: Running) -> list[Action]:
    if rev is None:
        return []
    t = f"{record['name']}@{rev['number']}"
    actions = []
    if not all_running(rev, running):
        actions.append(Action("start-revision", t, {"revision": rev["number"]}))
    if not all_running(rev, running) or not serves(rev, running):
        actions.append(Action("switch-traffic", t, {"revision": rev["number"]}))
    return actions


def parse_revision(text: str | int | None) -> int | None:
    if text is None:
        return None
    try:
        n = int(text)
    except ValueError:
        raise InvalidInput(f"revision {text!r} is not a number") from None
    if n < 1:
        raise InvalidInput(f"revision {text!r} is not a revision number")
    return n


def undo_target(record: dict[str, Any], rollout: str) -> int | None:
    """The revision that served before rollout `rollout` moved this host (None: it did not)."""
    for event in reversed(record.get("events", [])):
        if (
            event.get("rollout") == rollout
            and event.get("kind") == "deploy"
            and event.get("result") == "completed"
        ):
            if record["current"] != event.get("to"):
                raise Conflict(
                    f"rollout {rollout} moved {record['name']} to revision {event.get('to')}, but revision "
                    f"{record['current']} serves now: undo the later changes first, or roll back --to"
                )
            return event.get("from")  # type: ignore[no-any-return]
    return None
