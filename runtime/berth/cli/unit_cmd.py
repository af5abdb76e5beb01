"""`berth unit`: transient systemd services (placeholder; being implemented)."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    return None
