"""Container records: one JSON document per container, written atomically under a lock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from berth.containers.paths import ContainerPaths
from berth.state.atomic import atomic_write_json, read_json
from berth.state.flock import flocked
from berth.state.store import data_dir


def get(name: str) -> dict[str, Any] | None:
    try:
        record: dict[str, Any] = read_json(ContainerPaths.of(name).record)
    except FileNotFoundError:
        return None
    return record


def put(record: dict[str, Any]) -> None:
    atomic_write_json(ContainerPaths.of(record["name"]).record, record, mode=0o600)


def names() -> list[str]:
    root = data_dir() / "containers"
    try:
        entries = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(e for e in entries if (root / e / "record.json").exists())


@contextmanager
def locked() -> Iterator[None]:
    """One lock for every container mutation on the host: names and IPAM stay consistent."""
    root = data_dir() / "containers"
    root.mkdir(parents=True, exist_ok=True)
    with flocked(root / ".lock"):
        yield
