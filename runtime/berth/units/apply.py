"""Carry out a unit plan: one handler per action kind, run through `berth.plan.apply`.

`converge` is the whole read-plan-apply cycle under the units lock. A stop leaves no failed unit
behind (a service that exits non-zero on SIGTERM would otherwise keep the name taken), so the
start that follows it, or the next apply, finds the name free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from berth import plan as plans
from berth.errors import NotFound
from berth.plan import Action, Handler
from berth.systemd.sync import Systemd
from berth.units.devices import check_device_limits
from berth.units.observe import Observed, live_state, observe
from berth.units.plan import plan
from berth.units.records import UnitRecords
from berth.units.spec import UnitSpec


@dataclass(frozen=True)
class Outcome:
    """What one converge saw, planned and did (`after` is `before` in check mode)."""

    spec: UnitSpec
    before: Observed
    after: Observed
    planned: list[Action]
    applied: list[Action]
    check: bool


def handlers(
    spec: UnitSpec, systemd: Systemd, records: UnitRecords, timeout: float | None = None
) -> Mapping[str, Handler]:
    name = spec.name

    def release() -> None:
        try:
            systemd.reset_failed(name)
        except NotFound:  # nothing failed is loaded under this name
            pass

    def start(_: Action) -> None:
        systemd.start_transient(name, spec.systemd_properties(), timeout)

    def stop(_: Action) -> None:
        try:
            systemd.stop(name, timeout)
        except NotFound:  # gone since we looked: already stopped
            return
        if live_state(systemd, name).active_state == "failed":
            release()

    def reset_failed(_: Action) -> None:
        release()

    def record(_: Action) -> None:
        records.put(spec)

    def forget(_: Action) -> None:
        records.forget(name)

    return {"start": start, "stop": stop, "reset-failed": reset_failed, "record": record, "forget": forget}


def converge(
    spec: UnitSpec, systemd: Systemd, records: UnitRecords, check: bool = False, timeout: float | None = None
) -> Outcome:
    """Bring unit `spec.name` to `spec`; in check mode only plan (no lock taken, nothing written)."""
    if spec.state != "absent":
        check_device_limits(dict(spec.resources))  # what systemd would only log and ignore
    if check:
        before = observe(spec.name, records, systemd)
        actions = plan(spec, before)
        return Outcome(spec, before, before, actions, [], check=True)
    with records.locked():
        before = observe(spec.name, records, systemd)
        actions = plan(spec, before)
        applied = plans.apply(actions, handlers(spec, systemd, records, timeout))
        after = observe(spec.name, records, systemd) if applied else before
    return Outcome(spec, before, after, actions, applied, check=False)
