"""The runtime's record store: one JSON document per object, one lock per collection."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from berth.state.atomic import atomic_write_json, read_json, remove_file
from berth.state.flock import flocked

DEFAULT_DATA_DIR = Path("/var/lib/berth")


def data_dir() -> Path:
    """The runtime's data dir: `$BERTH_DATA_DIR` or /var/lib/berth."""
    return Path(os.environ.get("BERTH_DATA_DIR") or DEFAULT_DATA_DIR)


class RecordStore:
    """Records of one kind (`units`, `containers`, ...) under `<data dir>/<kind>/<name>.json`.

    Names must already be validated by the caller: the store only refuses path separators
    as a last line of defence.
    """

    def __init__(self, kind: str, root: Path | None = None) -> None:
        self.dir = (root or data_dir()) / kind

    def path(self, name: str) -> Path:
        """Where record `name` is (written atomically there: berth.state.atomic)."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"unsafe record name {name!r}")
        return self.dir / f"{name}.json"

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            record: dict[str, Any] = read_json(self.path(name))
        except FileNotFoundError:
            return None
        return record

    def put(self, name: str, record: dict[str, Any]) -> None:
        atomic_write_json(self.path(name), record, mode=0o600)

    def delete(self, name: str) -> bool:
        return remove_file(self.path(name))

    def names(self) -> list[str]:
        try:
            entries = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(e[:-5] for e in entries if e.endswith(".json") and not e.startswith("."))

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise read-plan-apply cycles of concurrent berth processes on this kind."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with flocked(self.dir / ".lock"):
            yield
