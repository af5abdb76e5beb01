"""Pure planning for one unit: `plan(desired, observed) -> actions`. No I/O here.

Transient units cannot be edited in place, so a changed definition of a running unit is a stop
followed by a start of the new one. A failed unit keeps its name taken until `reset-failed`.
Action kinds: reset-failed, stop, start, record (write berth's record), forget (delete it).
"""

from __future__ import annotations

from berth.plan import Action
from berth.systemd.status import RUNNING_STATES
from berth.units.observe import Observed
from berth.units.spec import UnitSpec


def plan(desired: UnitSpec, observed: Observed) -> list[Action]:
    name = desired.name
    state = observed.active_state
    running = state in RUNNING_STATES
    failed = state == "failed"
    actions: list[Action] = []

    if desired.state == "started":
        if running and observed.running_hash != desired.spec_hash:
            actions.append(Action("stop", name, {"reason": "spec changed"}))
            actions.append(
                Action(
                    "start",
                    name,
                    {
                        "reason": "spec changed",
                        "spec_hash": desired.spec_hash,
                        "previous_hash": observed.running_hash,
                    },
                )
            )
        elif not running:
            if failed:
                actions.append(Action("reset-failed", name, {"reason": "unit failed"}))
            actions.append(Action("start", name, {"reason": f"unit {state}", "spec_hash": desired.spec_hash}))
    elif running:
        actions.append(Action("stop", name, {"reason": f"state {desired.state}"}))
    elif failed and desired.state == "absent":
        actions.append(Action("reset-failed", name, {"reason": "state absent"}))

    if desired.state == "absent":
        if observed.record is not None:
            actions.append(Action("forget", name))
    elif observed.record is None or observed.record.spec != desired.to_json():
        actions.append(Action("record", name, {"spec_hash": desired.spec_hash, "state": desired.state}))
    return actions
