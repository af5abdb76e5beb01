"""berth-restore.service: the one regular unit Berth installs, so containers survive a reboot."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from berth.state.atomic import atomic_write_bytes
from berth.systemd.sync import Systemd

UNIT = "berth-restore.service"
UNIT_DIR = Path("/etc/systemd/system")

UNIT_TEXT = """\
# Installed by `berth system install`.
[Unit]
Description=Berth: bring containers back after boot
Documentation=https://github.com/berth-project/berth
Wants=network-online.target
After=network-online.target local-fs.target dbus.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={python} -m berth restore

[Install]
WantedBy=multi-user.target
"""


def install(systemd: Systemd) -> bool:
    """Write and enable the unit; return whether anything changed."""
    text = UNIT_TEXT.format(python=sys.executable).encode()
    path = UNIT_DIR / UNIT
    link = UNIT_DIR / "multi-user.target.wants" / UNIT
    changed = False
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        current = None
    if current != text:
        atomic_write_bytes(path, text)
        changed = True
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(f"../{UNIT}", link)  # what `systemctl enable` does for WantedBy=
        changed = True
    if changed:
        systemd.reload()
    return changed
