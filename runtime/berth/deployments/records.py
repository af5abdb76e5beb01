"""Deployment records: one JSON document per deployment, written atomically at every step.

`<data dir>/deployments/<name>.json` holds the settings, every revision not yet pruned (with its
state, frozen content, image digests and health result), the number of the active revision, the
operation in flight (if any) and a short history of pruned revisions. One document, so a reader
(or a run after a crash) never sees a revision's state disagree with the deployment's.
A per-deployment lock serialises whole deploys and rollbacks (minutes, with the health gate), not
just single writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from berth.errors import Conflict
from berth.state.store import RecordStore


def store() -> RecordStore:
    return RecordStore("deployments")


def get(name: str) -> dict[str, Any] | None:
    return store().get(name)


def put(record: dict[str, Any]) -> None:
    store().put(record["name"], record)


def names() -> list[str]:
    return store().names()


def new_record(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "settings": {},
        "current": None,
        "next": 1,
        "revisions": {},
        "operation": None,
        "pruned": [],
    }


@contextmanager
def locked(name: str, timeout: float = 600) -> Iterator[None]:
    from filelock import FileLock, Timeout

    directory = store().dir
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / f".{name}.lock"))
    try:
        lock.acquire(timeout=timeout)
    except Timeout as exc:
        raise Conflict(f"another berth process is deploying {name}") from exc
    try:
        yield
    finally:
        lock.release()
