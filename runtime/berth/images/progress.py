"""How long operations report progress without knowing who watches (rich bars, or nobody)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Advance = Callable[[int], None]


class Progress(Protocol):
    def task(self, description: str, total: int | None) -> Advance:
        """Start a task; the returned function advances it by a number of bytes."""


class NoProgress:
    """For --json and non-interactive runs: nothing is printed."""

    def task(self, description: str, total: int | None) -> Advance:
        return _ignore


def _ignore(_: int) -> None:
    return None
