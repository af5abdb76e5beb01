"""Keys for the lab: one client key for the fleet, one host key per host, a known_hosts file."""

from __future__ import annotations

import subprocess
from pathlib import Path

from berth.errors import LabError


def ensure_keypair(path: Path, comment: str) -> None:
    if path.exists() and Path(f"{path}.pub").exists():
        return
    path.unlink(missing_ok=True)
    proc = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise LabError(f"ssh-keygen failed: {proc.stderr.strip()}")


def public_key(path: Path) -> str:
    return Path(f"{path}.pub").read_text().strip() + "\n"


def known_hosts_line(names: list[str], host_key: Path) -> str:
    keytype, key = public_key(host_key).split()[:2]
    return f"{','.join(names)} {keytype} {key}\n"
