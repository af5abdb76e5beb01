"""Berth's records of the units it manages: the source of truth for "which units are ours".

One JSON document per unit in RecordStore("units"); a record is written only when a plan is
applied. Unreadable records (another user's, a corrupt file) become typed errors here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from berth.errors import BerthError, PermissionDenied
from berth.state.store import RecordStore
from berth.units.spec import UnitSpec

RECORD_VERSION = 1


@dataclass(frozen=True)
class UnitRecord:
    name: str
    spec: dict[str, Any]
    spec_hash: str

    @property
    def state(self) -> str:
        return str(self.spec.get("state", "started"))


def _denied(store: RecordStore, exc: OSError) -> PermissionDenied:
    return PermissionDenied(
        f"cannot use berth's unit records in {store.dir}: {exc.strerror}; run as root",
        path=str(exc.filename or store.dir),
    )


class UnitRecords:
    def __init__(self, store: RecordStore | None = None) -> None:
        self.store = store or RecordStore("units")

    def get(self, name: str) -> UnitRecord | None:
        try:
            doc = self.store.get(name)
        except PermissionError as exc:
            raise _denied(self.store, exc) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BerthError(f"berth's record of {name} is corrupt: {exc}", unit=name) from None
        if doc is None:
            return None
        try:
            return UnitRecord(name=doc["unit"], spec=doc["spec"], spec_hash=doc["spec_hash"])
        except (KeyError, TypeError):
            raise BerthError(f"berth's record of {name} lacks unit, spec or spec_hash", unit=name) from None

    def put(self, spec: UnitSpec) -> None:
        from datetime import UTC, datetime  # here: every container command imports this module

        record = {
            "version": RECORD_VERSION,
            "unit": spec.name,
            "spec": spec.to_json(),
            "spec_hash": spec.spec_hash,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            self.store.put(spec.name, record)
        except PermissionError as exc:
            raise _denied(self.store, exc) from None

    def forget(self, name: str) -> bool:
        try:
            return self.store.delete(name)
        except PermissionError as exc:
            raise _denied(self.store, exc) from None

    def names(self) -> list[str]:
        try:
            return self.store.names()
        except PermissionError as exc:
            raise _denied(self.store, exc) from None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the units lock across a read-plan-apply cycle."""
        try:
            with self.store.locked():
                yield
        except PermissionError as exc:
            raise _denied(self.store, exc) from None
