"""Fixtures shared by the runtime's unit tests."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[str]:
    """A private dbus-daemon (session type, no policy limits): its address."""
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed")
    sock = tmp_path / "bus.sock"
    conf = tmp_path / "bus.conf"
    conf.write_text(
        "<busconfig><type>session</type>"
        f"<listen>unix:path={sock}</listen><auth>EXTERNAL</auth>"
        '<policy context="default"><allow user="*"/><allow send_destination="*" eavesdrop="true"/>'
        '<allow receive_sender="*"/><allow own="*"/></policy></busconfig>\n'
    )
    daemon = subprocess.Popen(
        ["dbus-daemon", f"--config-file={conf}", "--nofork", "--nopidfile"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert daemon.poll() is None, "dbus-daemon exited"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        yield f"unix:path={sock}"
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
