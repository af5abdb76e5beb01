"""A container as it is now: its record joined with systemd's live unit and its exit record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from berth.containers import lifecycle, records
from berth.containers.paths import ContainerPaths, unit_name
from berth.host import boot_identity
from berth.systemd.status import UnitState
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
