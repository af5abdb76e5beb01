"""What is there now: berth's record of a unit joined with systemd's live view of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from berth.errors import NotFound
from berth.systemd.status import UnitState
from berth.systemd.sync import Systemd
from berth.units.records import UnitRecord, UnitRecords
from berth.units.spec import MARKER_ENV


@dataclass(frozen=True)
class Observed:
    """The input of `plan`: the record (if any) and the live unit (not-loaded if gone)."""

    record: UnitRecord | None
    live: UnitState

    @property
    def active_state(self) -> str:
        return self.live.active_state

    @property
    def running_hash(self) -> str | None:
        """The spec hash of what runs: the unit's own marker wins over the record."""
        return self.live.env(MARKER_ENV) or (self.record.spec_hash if self.record else None)

    @property
    def managed(self) -> bool:
        """Berth's unit: it has a record, or it carries berth's marker."""
        return self.record is not None or self.live.env(MARKER_ENV) is not None

    @property
    def state(self) -> str | None:
        """The unit in the words of a spec: started, stopped, failed, or None when absent."""
        if self.live.running:
            return "started"
        if self.live.active_state == "failed":
            return "failed"
        return "stopped" if self.record is not None or self.live.exists else None

    def diff_side(self) -> dict[str, Any]:
        return {"state": self.state, "spec": self.record.spec if self.record else None}


def live_state(systemd: Systemd, name: str) -> UnitState:
    try:
        return systemd.unit_state(name)
    except NotFound:
        return UnitState.not_loaded(name)


def observe(name: str, records: UnitRecords, systemd: Systemd) -> Observed:
    return Observed(record=records.get(name), live=live_state(systemd, name))
