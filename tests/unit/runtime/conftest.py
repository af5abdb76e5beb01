"""Fixtures shared by the runtime's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.private_bus import private_bus


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[str]:
    """A private dbus-daemon (session type, no policy limits): its address."""
    with private_bus(tmp_path) as address:
        yield address
