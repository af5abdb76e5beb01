"""A private dbus-daemon for tests that need a bus but not systemd on it (unit tests of the
D-Bus clients, and the errors for a bus where nobody owns org.freedesktop.systemd1)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

POLICY = (
    '<policy context="default"><allow user="*"/><allow send_destination="*" eavesdrop="true"/>'
    '<allow receive_sender="*"/><allow own="*"/></policy>'
)


@contextmanager
def private_bus(directory: Path, bus_type: str = "session") -> Iterator[str]:
    """Run a dbus-daemon of `bus_type` (no policy limits) listening in `directory`; yield its
    address; stop it (by its PID) whatever happens. Skips the test without dbus-daemon."""
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed")
    sock = directory / "bus.sock"
    conf = directory / "bus.conf"
    conf.write_text(
        f"<busconfig><type>{bus_type}</type><listen>unix:path={sock}</listen>"
        f"<auth>EXTERNAL</auth>{POLICY}</busconfig>\n"
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
            assert time.monotonic() < deadline, "dbus-daemon did not create its socket"
            time.sleep(0.01)
        yield f"unix:path={sock}"
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
