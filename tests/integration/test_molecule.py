"""`molecule test` of the default scenario, on a lab of its own (created and destroyed by the scenario)."""

from __future__ import annotations

import os
import subprocess

import pytest
from labkit import REPO, VENV, berth

pytestmark = pytest.mark.lab


def test_molecule_default_scenario() -> None:
    name = f"m{os.getpid() % 100000}"
    env = {
        **os.environ,
        "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '')}",
        "BERTH_MOLECULE_LAB": name,
        # One host: the role and modules are the same on each; the fleet tests cover many hosts.
        "BERTH_MOLECULE_HOSTS": "1",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
    }
    try:
        proc = subprocess.run(
            [str(VENV / "bin" / "molecule"), "test", "-s", "default"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    finally:
        down = berth("lab", "down", "--name", name, check=False)  # a no-op when destroy ran
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "idempotence" in out.lower()
    assert down["ok"] or "is not up" in (down.get("error") or {}).get("message", ""), down
