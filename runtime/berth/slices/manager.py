"""Create, change live and remove slices: plan against the record and systemd, then apply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from berth import plan as plans
from berth.containers.config import resource_properties
from berth.errors import Conflict
from berth.plan import Action
from berth.slices.spec import SliceSpec
from berth.state.store import RecordStore
from berth.systemd.properties import to_dbus
from berth.systemd.sync import Systemd
from berth.units.devices import check_device_limits, with_resets
from berth.units.limits import cgroup_unified
from berth.units.observe import live_state


@dataclass
class SliceOutcome:
    planned: list[Action]
    applied: list[Action]
    before: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)


def slice_properties(spec: SliceSpec, unified: bool | None) -> tuple[dict[str, Any], list[str]]:
    resources = dict(spec.resources)
    mems = resources.pop("mems", None)
    cpus = resources.pop("cpus", None)
    props, warnings = resource_properties(resources, unified)
    for key, prop, value in (("cpus", "AllowedCPUs", cpus), ("mems", "AllowedMemoryNodes", mems)):
        if value is None:
            continue
        props[prop] = [int(c) for c in str(value).split(",")]
        if unified is False:
            warnings.append(
                f"{key}: not enforced on this host: a slice binds {key} through the cpuset controller "
                f"({prop}), which systemd drives only on cgroup v2; pin each container with cpus instead"
            )
    props["Description"] = f"berth slice {spec.group}"
    return props, warnings


class Slices:
    def __init__(self, systemd: Systemd | None = None) -> None:
        self._systemd = systemd
        self.records = RecordStore("slices")

    @property
    def systemd(self) -> Systemd:
        if self._systemd is None:
            self._systemd = Systemd()
        return self._systemd

    def converge(self, spec: SliceSpec, state: str, check: bool = False) -> SliceOutcome:
        if state == "present":
            check_device_limits(dict(spec.resources))  # what systemd would only log and ignore
        with self.records.locked():
            record = self.records.get(spec.group)
            live = live_state(self.systemd, spec.unit)
            if record is None and live.exists and state == "present":
                raise Conflict(f"{spec.unit} exists and is not a berth slice: choose another name")
            actions: list[Action] = []
            if state == "absent":
                if live.exists and record is not None:
                    actions.append(Action("stop", spec.unit))
                if record is not None:
                    actions.append(Action("forget", spec.group))
            elif not live.running:
                actions.append(Action("start", spec.unit, {"spec_hash": spec.spec_hash}))
            elif record is None or record["spec_hash"] != spec.spec_hash:
                actions.append(Action("update", spec.unit, {"spec_hash": spec.spec_hash}))
            outcome = SliceOutcome(actions, [], record)
            if state == "present":  # said on every run, not only when something changes
                outcome.warnings = slice_properties(spec, cgroup_unified())[1]
            if not check:
                outcome.applied = plans.apply(actions, self._handlers(spec, outcome))
            return outcome

    def _handlers(self, spec: SliceSpec, outcome: SliceOutcome) -> dict[str, plans.Handler]:
        props, _ = slice_properties(spec, cgroup_unified())
        typed = [to_dbus(k, v) for k, v in props.items()]

        def start(_: Action) -> None:
            self.systemd.start_transient(spec.unit, typed)
            self.records.put(spec.group, {**spec.to_json(), "spec_hash": spec.spec_hash})

        def update(_: Action) -> None:
            self.systemd.set_unit_properties(spec.unit, with_resets(typed))
            self.records.put(spec.group, {**spec.to_json(), "spec_hash": spec.spec_hash})

        def stop(_: Action) -> None:
            users = self._users(spec)
            if users:
                raise Conflict(f"{spec.unit} is still used by {', '.join(users)}: remove those first")
            self.systemd.stop(spec.unit)

        def forget(_: Action) -> None:
            self.records.delete(spec.group)

        return {"start": start, "update": update, "stop": stop, "forget": forget}

    def _users(self, spec: SliceSpec) -> list[str]:
        """Containers placed in this slice or below it, and slices nested in it."""
        from berth.containers import records as containers

        prefix = f"berth-{spec.group}-"
        users = [f"slice {n}" for n in self.records.names() if n.startswith(f"{spec.group}-")]
        for name in containers.names():
            record = containers.get(name) or {}
            placed = record.get("spec", {}).get("slice", "")
            if placed == spec.unit or placed.startswith(prefix):
                users.append(f"container {name}")
        return users

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for name in self.records.names():
            record = self.records.get(name) or {}
            live = live_state(self.systemd, record.get("unit", f"berth-{name}.slice"))
            rows.append({**record, "active_state": live.active_state, "control_group": live.control_group})
        return rows

    def restore(self) -> list[str]:
        """Start recorded slices that are not running (after a boot)."""
        started = []
        for row in self.rows():
            if row["active_state"] != "active":
                spec = SliceSpec(row["name"], tuple(sorted(row["resources"].items())))
                self.converge(spec, "present")
                started.append(spec.unit)
        return started
