"""A container as it is now: its record joined with systemd's live unit and its exit record."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from berth.containers import lifecycle, records
from berth.containers.paths import ContainerPaths, unit_name
from berth.host import boot_identity
from berth.systemd.jobs import SERVICE
from berth.systemd.status import RUNNING_STATES, UnitState
from berth.systemd.sync import Systemd
from berth.units.observe import live_state


@dataclass(frozen=True)
class Observed:
    name: str
    record: dict[str, Any] | None
    live: UnitState

    @property
    def exists(self) -> bool:
        return self.record is not None

    @property
    def running(self) -> bool:
        return self.live.running

    @property
    def spec_hash(self) -> str | None:
        return self.record["spec_hash"] if self.record else None

    @property
    def status(self) -> str | None:
        """The persisted state corrected by what systemd says (a process may have ended)."""
        if self.record is None:
            return None
        if self.live.running:
            return lifecycle.RUNNING
        if self.record["status"] == lifecycle.RUNNING:
            return lifecycle.EXITED
        return str(self.record["status"])

    def exit(self) -> dict[str, Any] | None:
        if self.record is None or self.live.running:
            return None
        paths = ContainerPaths.of(self.name)
        try:
            exit_info = json.loads(paths.exit_file.read_text())
        except (FileNotFoundError, ValueError):
            exit_info = None
        try:
            error = paths.error_file.read_text().strip() or None
        except FileNotFoundError:
            error = None
        reason = lifecycle.exit_reason(exit_info, error)
        if reason is None and self.record.get("finished_reason"):
            return {"reason": self.record["finished_reason"], "exit_code": None, "signal": None}
        rebooted = self.record.get("boot") != boot_identity()
        if reason is None and self.record["status"] == lifecycle.RUNNING and rebooted:
            return {"reason": "host-rebooted", "exit_code": None, "signal": None}
        return reason


def observe(systemd: Systemd, name: str) -> Observed:
    return Observed(name, records.get(name), live_state(systemd, unit_name(name)))


def observe_all(systemd: Systemd, names: Sequence[str]) -> list[Observed]:
    """The containers `names` as `observe` sees them, for `ps`: one listing of the loaded units.

    `observe` asks systemd three things per container (GetUnit, then GetAll of the Unit and the
    Service interfaces: hundreds of properties, decoded in Python), which made `berth ps` of 200
    containers take 1.4 s. One ListUnitsByPatterns gives the states of them all; the running
    containers' MainPID and ControlGroup then come in one pipelined batch of small Gets. The rest
    of `UnitState` (properties, environment, invocation) is left empty: `ps` does not show it.
    """
    listed = {u.name: u for u in systemd.list_units([unit_name("*")])}
    entries = [listed.get(unit_name(name)) for name in names]
    running = [e for e in entries if e is not None and e.active_state in RUNNING_STATES]
    values = systemd.property_values([e.path for e in running], SERVICE, ("MainPID", "ControlGroup"))
    extra = {e.name: v for e, v in zip(running, values, strict=True)}
    out = []
    for name, entry in zip(names, entries, strict=True):
        if entry is None:
            live = UnitState.not_loaded(unit_name(name))
        else:
            props: dict[str, Any] = {
                "LoadState": entry.load_state,
                "ActiveState": entry.active_state,
                "SubState": entry.sub_state,
                **(extra.get(entry.name) or {}),  # gone since the listing: shown as listed, no PID
            }
            live = UnitState.from_properties(entry.name, props)
        out.append(Observed(name, records.get(name), live))
    return out
