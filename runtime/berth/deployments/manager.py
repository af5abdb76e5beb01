"""Deploy, roll back, recover: each observes, plans (berth.deployments.plan) and applies.

Every handler below writes the revision state it is about to act on before it acts
(`revision.py`), so the next run, after a kill or a reboot, knows exactly which side of the
commit point (`switching`) the host was on, and `recover` ends on one revision. A deploy that
fails its gate is undone by the same recovery plan, with the failure as the reason.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from berth import plan as plans
from berth.containers.manager import Containers
from berth.deployments import crash, monitor, records, traffic
from berth.deployments import revision as rv
from berth.deployments.freeze import Frozen, revision_specs
from berth.deployments.gate import Watch, not_ready, run_gate
from berth.deployments.health import Health
from berth.deployments.plan import (
    Running,
    containers_of,
    plan_deploy,
    plan_recover,
    plan_rollback,
    port_key,
    undo_target,
)
from berth.deployments.spec import DeploymentSpec
from berth.errors import BerthError, Conflict, DeployFailed, NotFound, StartFailed
from berth.network.ports import PortMapping
from berth.plan import Action, Handler

MAX_EVENTS = 50
MAX_PRUNED = 20


def holder(name: str, number: int) -> str:
    """The image store holder of one kept revision: its images and layers survive prune."""
    return f"deployment-{name}-{number}"


@dataclass
class Outcome:
    name: str
    target: int | None
    planned: list[Action]
    applied: list[Action] = field(default_factory=list)
    recovered: list[Action] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class Deployments:
    def __init__(self, containers: Containers | None = None) -> None:
        self.containers = containers or Containers()

    def close(self) -> None:
        self.containers.close()

    # -- observing -----------------------------------------------------------------------------
    def running(self, record: dict[str, Any]) -> Running:
        from berth.network import state

        names = [c for r in record["revisions"].values() for c in containers_of(r)]
        up = frozenset(c for c in names if self.containers.observe(c).running)
        holders = {k: c for k, (_, c) in state.get_ports().items()}
        return Running(up, holders, monitor.watching(self.containers.systemd, record["name"]))  # type: ignore[arg-type]

    def require(self, name: str) -> dict[str, Any]:
        record = records.get(name)
        if record is None:
            raise NotFound(f"no deployment named {name!r}")
        return record

    # -- operations ----------------------------------------------------------------------------
    def deploy(self, spec: DeploymentSpec, frozen: Frozen, rollout: str | None, check: bool) -> Outcome:
        with records.locked(spec.name):
            record = records.get(spec.name) or records.new_record(spec.name)
            recovered = self._recover(record, check)
            running = self.running(record)
            _check_ports(record, frozen.content(), running)
            liveness = any(r.liveness is not None for r in frozen.roles)
            target, actions = plan_deploy(record, frozen.hash, spec.settings(), running, liveness)
            outcome = Outcome(spec.name, target, actions, recovered=recovered)
            if check or not actions:
                return outcome
            if target is None:  # settings only
                outcome.applied = plans.apply(actions, self._handlers(record, None, outcome))
                return outcome
            return self._run(record, "deploy", target, actions, rollout, outcome, frozen, spec.settings())

    def rollback(
        self, name: str, to: int | None, rollout: str | None, undo: str | None, check: bool
    ) -> Outcome:
        with records.locked(name):
            record = self.require(name)
            recovered = self._recover(record, check)
            if undo is not None:
                to = undo_target(record, undo)
                if to is None:
                    return Outcome(name, None, [], recovered=recovered)
            target, actions = plan_rollback(record, to, self.running(record))
            outcome = Outcome(name, target, actions, recovered=recovered)
            if check or not actions or target is None:
                return outcome
            return self._run(record, "rollback", target, actions, rollout, outcome)

    def recover(self, name: str, check: bool = False) -> list[Action]:
        """`berth restore` and every run: finish or undo what a crash left; serve the active revision."""
        with records.locked(name):
            record = self.require(name)
            return self._recover(record, check)

    def remove(self, name: str, check: bool = False) -> list[Action]:
        with records.locked(name):
            record = records.get(name)
            if record is None:
                return []
            watched = monitor.watching(self.containers.systemd, name)
            actions = [
                *([Action("stop-monitor", name, {"revision": watched})] if watched is not None else []),
                *(
                    Action("prune-revision", f"{name}@{n}", {"revision": int(n), "force": True})
                    for n in sorted(record["revisions"], key=int)
                ),
                Action("remove-deployment", name),
            ]
            if check:
                return actions
            outcome = Outcome(name, None, actions)
            return plans.apply(actions, self._handlers(record, None, outcome))

    # -- internals -----------------------------------------------------------------------------
    def _recover(self, record: dict[str, Any], check: bool) -> list[Action]:
        if not record["revisions"]:
            return []
        actions = plan_recover(record, self.running(record))
        if check or not actions:
            return actions
        outcome = Outcome(record["name"], None, actions)
        return plans.apply(actions, self._handlers(record, None, outcome))

    def _run(
        self,
        record: dict[str, Any],
        kind: str,
        target: int,
        actions: list[Action],
        rollout: str | None,
        outcome: Outcome,
        frozen: Frozen | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Outcome:
        started = time.monotonic()
        if settings is not None:
            record["settings"] = dict(settings)
        record["operation"] = {
            "kind": kind,
            "target": target,
            "previous": record["current"],
            "rollout": rollout,
            "started_at": rv.now(),
            "step": "planned",
            "timings": {},
        }
        try:
            records.put(record)
        except BerthError as exc:  # nothing started: the record on disk is the one before
            serves = f", revision {record['current']} serves" if record["current"] is not None else ""
            raise DeployFailed(
                f"{kind} of {record['name']} to revision {target} failed: {exc.message}; "
                f"nothing changed{serves}",
                revision=target,
                serving=record["current"],
                cause=exc.to_json(),
            ) from None
        actions = [*actions, Action("close-operation", record["name"], {"result": "completed"})]
        handlers = self._handlers(record, frozen, outcome, settings)
        try:
            outcome.applied = plans.apply(actions, handlers)
        except BerthError as exc:
            applied = list(getattr(exc, "applied", []))
            try:
                undo = self._abort(record, exc)
            except BerthError as undo_exc:  # a full disk fails the undo's writes too
                cut_short = DeployFailed(
                    f"{kind} of {record['name']} to revision {target} failed: {exc.message}; its undo "
                    f"failed too ({undo_exc.message}): `berth restore` finishes it, back to one "
                    "consistent revision",
                    revision=target,
                    serving=None,
                    cause=exc.to_json(),
                    undo=undo_exc.to_json(),
                )
                cut_short.applied = [*outcome.recovered, *applied]  # type: ignore[attr-defined]
                raise cut_short from None
            error = DeployFailed(
                f"{kind} of {record['name']} to revision {target} failed: {exc.message}; "
                + (
                    f"revision {record['current']} serves"
                    if record["current"] is not None
                    else "no revision serves"
                ),
                revision=target,
                serving=record["current"],
                cause=exc.to_json(),
                **{k: v for k, v in exc.details.items() if k in ("health",)},
            )
            error.applied = [*outcome.recovered, *applied, *undo]  # type: ignore[attr-defined]
            raise error from None
        outcome.timings = {**record.get("last_timings", {}), "total": round(time.monotonic() - started, 3)}
        return outcome

    def _abort(self, record: dict[str, Any], exc: BerthError) -> list[Action]:
        """Back to the revision that served before the operation, without dropping its traffic."""
        op = record["operation"]
        op["reason"] = exc.message
        records.put(record)
        actions = plan_recover(record, self.running(record))
        for i, a in enumerate(actions):
            if a.kind == "close-operation":
                actions[i] = Action(a.kind, a.target, {"result": "rolled-back", "reason": exc.message})
        outcome = Outcome(record["name"], None, actions)
        return plans.apply(actions, self._handlers(record, None, outcome))

    def _handlers(
        self,
        record: dict[str, Any],
        frozen: Frozen | None,
        outcome: Outcome,
        settings: dict[str, Any] | None = None,
    ) -> Mapping[str, Handler]:
        name = record["name"]
        c = self.containers

        def rev(action: Action) -> dict[str, Any]:
            r: dict[str, Any] = record["revisions"][str(action.detail["revision"])]
            return r

        def step(action: Action) -> None:
            op = record.get("operation")
            if op is not None:
                op["step"] = action.kind

        def write() -> None:
            records.put(record)

        def timed(handler: Handler) -> Handler:
            def run(action: Action) -> None:
                t0 = time.monotonic()
                step(action)
                handler(action)
                op = record.get("operation")
                if op is not None:
                    op["timings"][action.kind] = round(time.monotonic() - t0, 3)

            return run

        def update_settings(action: Action) -> None:
            record["settings"] = dict(action.detail["settings"])
            write()

        def create_revision(action: Action) -> None:
            assert frozen is not None
            from berth.images.store import ImageStore

            number = int(action.detail["revision"])
            op = record["operation"]
            specs = revision_specs(name, number, frozen.content(), frozen.images)
            record["revisions"][str(number)] = {
                "number": number,
                "hash": frozen.hash,
                "state": rv.PENDING,
                "states": [{"state": rv.PENDING, "at": rv.now()}],
                "created_at": rv.now(),
                "rollout": op.get("rollout") if op else None,
                "content": frozen.content(),
                "images": frozen.images,
                "containers": {role: s.name for role, s in specs.items()},
                "served": False,
            }
            record["next"] = number + 1
            write()
            images = [i["digest"] for i in frozen.images.values()]
            layers = [chain for i in frozen.images.values() for chain in i["layers"]]
            if images:
                with ImageStore().locked() as store:
                    store.register_use(holder(name, number), images=images, layers=layers)
            crash.point("revision-recorded")

        def create_containers(action: Action) -> None:
            r = rev(action)
            specs = revision_specs(name, r["number"], r["content"], r["images"])
            for spec in specs.values():
                if not c.observe(spec.name).exists:
                    outcome.warnings += c.create(spec).warnings
            rv.advance(r, rv.CREATED)
            write()
            crash.point("containers-created")

        def start_revision(action: Action) -> None:
            r = rev(action)
            if r["state"] in (rv.CREATED, rv.RETIRED):
                rv.advance(r, rv.STARTING)
                write()
            for role in r["content"]["roles"]:
                container = r["containers"][role["role"]]
                if c.observe(container).running:
                    continue
                began = time.monotonic()
                try:  # an `sdnotify: container` start returns once its READY=1 arrived
                    outcome.warnings += c.start(container).warnings
                except StartFailed as exc:
                    why = exc.details.get("not_ready")
                    if role["health"]["kind"] != "notify" or not why or r["state"] != rv.STARTING:
                        raise  # not the gate's to report (a recovery has no gate)
                    result = not_ready(role["role"], container, why, time.monotonic() - began)
                    r["health"] = {**result.to_json(), "at": rv.now()}
                    write()
                    raise DeployFailed(
                        f"revision {r['number']} failed its health gate: {result.reason}", health=r["health"]
                    ) from None
            crash.point("started")

        def gate(action: Action) -> None:
            r = rev(action)
            rv.advance(r, rv.CHECKING)
            write()
            watches = []
            for role in r["content"]["roles"]:
                health = Health.from_json(role["health"])
                watches.append(Watch(role["role"], r["containers"][role["role"]], health))
            result = run_gate(c.systemd, watches)
            r["health"] = {**result.to_json(), "at": rv.now()}
            if not result.passed:
                write()
                raise DeployFailed(
                    f"revision {r['number']} failed its health gate: {result.reason}", health=r["health"]
                )
            rv.advance(r, rv.HEALTHY)
            write()
            crash.point("checked")

        def switch_traffic(action: Action) -> None:
            r = rev(action)
            if r["state"] == rv.HEALTHY:
                rv.advance(r, rv.SWITCHING)  # the commit point
                write()
                crash.point("switching")
            traffic.move_all(  # every port of the revision in one nftables transaction
                [
                    (PortMapping.from_json(p), r["containers"][role["role"]])
                    for role in r["content"]["roles"]
                    for p in role["ports"]
                ]
            )
            crash.point("switched")
            if r["state"] == rv.SWITCHING:
                old = record["revisions"].get(str(record["current"]))
                if old is not None and old is not r and old["state"] == rv.ACTIVE:
                    rv.advance(old, rv.RETIRED)
                rv.advance(r, rv.ACTIVE)
                r["served"] = True
                record["current"] = r["number"]
                op = record.get("operation")
                if op is not None and op.get("rollout"):
                    r.setdefault("rollouts", []).append(op["rollout"])
                write()
                crash.point("activated")

        def stop_revision(action: Action) -> None:
            r = rev(action)
            drain = float(action.detail.get("drain") or 0)
            if drain > 0:
                time.sleep(drain)  # connections the switch left on the old revision finish
            for container in containers_of(r):
                try:  # kept for a rollback: its network stays parked (same address, no netlink)
                    c.stop(container, keep_network=True)
                except NotFound:
                    pass
            crash.point("old-stopped" if record["current"] == r["number"] else "retired")

        def abandon_revision(action: Action) -> None:
            r = rev(action)
            rv.advance(r, rv.abandoned_state(r), reason=(record.get("operation") or {}).get("reason"))
            write()
            if r["state"] == rv.FAILED:
                self._remove_containers(r)
                self._release(name, r["number"])

        def prune_revision(action: Action) -> None:
            r = rev(action)
            if r["state"] in (rv.RETIRED, rv.FAILED):
                rv.advance(r, rv.PRUNED)
            write()
            self._remove_containers(r)
            self._release(name, r["number"])
            summary = {k: r.get(k) for k in ("number", "hash", "created_at", "images", "rollout", "health")}
            record["pruned"] = [*record.get("pruned", []), {**summary, "pruned_at": rv.now()}][-MAX_PRUNED:]
            del record["revisions"][str(r["number"])]
            if record["current"] == r["number"]:
                record["current"] = None
            write()

        def close_operation(action: Action) -> None:
            op = record.get("operation")
            if op is None:
                return
            event = {
                "kind": op["kind"],
                "rollout": op.get("rollout"),
                "from": op.get("previous"),
                "to": op["target"] if action.detail["result"] == "completed" else record["current"],
                "target": op["target"],
                "result": action.detail["result"],
                "reason": action.detail.get("reason") or op.get("reason"),
                "recovered": bool(action.detail.get("recovered")),
                "interrupted_at": action.detail.get("interrupted_at"),
                "started_at": op["started_at"],
                "finished_at": rv.now(),
                "timings": op.get("timings", {}),
            }
            record["events"] = [*record.get("events", []), event][-MAX_EVENTS:]
            record["last_timings"] = op.get("timings", {})
            record["operation"] = None
            write()

        def remove_deployment(action: Action) -> None:
            monitor.forget(name)
            records.store().delete(name)

        def stop_monitor(action: Action) -> None:
            monitor.stop(c.systemd, name)

        def start_monitor(action: Action) -> None:
            number = int(action.detail["revision"])
            monitor.start(c.systemd, name, number, record["revisions"].get(str(number)))

        handlers: dict[str, Handler] = {
            "update-settings": update_settings,
            "create-revision": create_revision,
            "create-containers": create_containers,
            "start-revision": start_revision,
            "gate": gate,
            "switch-traffic": switch_traffic,
            "stop-revision": stop_revision,
            "abandon-revision": abandon_revision,
            "prune-revision": prune_revision,
            "close-operation": close_operation,
            "remove-deployment": remove_deployment,
            "stop-monitor": stop_monitor,
            "start-monitor": start_monitor,
        }
        return {k: timed(h) for k, h in handlers.items()}

    def _remove_containers(self, r: dict[str, Any]) -> None:
        for container in containers_of(r):
            try:
                self.containers.remove(container, force=True)
            except NotFound:
                pass

    def _release(self, name: str, number: int) -> None:
        from berth.images.store import ImageStore

        store = ImageStore()
        if (store.root / "uses" / f"{holder(name, number)}.json").exists():
            with store.locked():
                store.release_use(holder(name, number))


def _check_ports(record: dict[str, Any], content: dict[str, Any], running: Running) -> None:
    """Refuse a service port that a container outside this deployment publishes: the switch
    would take it away from its owner (another deployment, or a plain `berth run -p`)."""
    own = {c for r in record["revisions"].values() for c in containers_of(r)}
    for role in content["roles"]:
        for p in role["ports"]:
            key = port_key(p)
            holder = running.holders.get(key)
            if holder is not None and holder not in own:
                raise Conflict(
                    f"port {key} of role {role['role']} is published by container {holder}, "
                    f"which is not part of deployment {record['name']}",
                    port=key,
                    holder=holder,
                )


def restore_all(deployments: Deployments | None = None) -> list[dict[str, Any]]:
    """At boot (from `berth restore`): every deployment back on exactly one serving revision."""
    d = deployments or Deployments()
    report = []
    for name in records.names():
        try:
            for action in d.recover(name):
                report.append({"name": action.target, "action": action.kind, "restart": "deployment"})
        except BerthError as exc:
            report.append({"name": name, "action": "failed", "restart": "deployment", "error": exc.message})
    return report
