"""`molecule test` of the scenarios, on a lab of their own (created and destroyed by the default scenario).

The three scenarios share one lab (`--shared-state`: the default scenario's create runs first and
its destroy last): default (host role, a container with limits, idempotence), rollback (v1, v2,
a broken v3 rolled back, then playbooks/rollback.yml to v1) and reboot (everything back after
`berth lab reboot`, limits included). Sharing saves booting and preparing a host per scenario.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from labkit import REPO, VENV, berth

pytestmark = pytest.mark.lab


SCENARIOS = ("default", "rollback", "reboot")


# Three scenarios in one run: longer than the suite's default per-test timeout on a busy machine.
@pytest.mark.timeout(1500)
def test_molecule_scenarios(tmp_path: Path) -> None:
    name = f"m{os.getpid() % 100000}"
    env = {
        **os.environ,
        # Molecule's state of this run alone: no stale "created"/"prepared" from an earlier one.
        "MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path / "molecule"),
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
            [
                str(VENV / "bin" / "molecule"),
                "test",
                "--shared-state",
                *(arg for scenario in SCENARIOS for arg in ("-s", scenario)),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    finally:
        down = berth("lab", "down", "--name", name, check=False)  # a no-op when destroy ran
        shutil.rmtree(REPO / ".build" / "molecule" / name, ignore_errors=True)  # the releases, likewise
    out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)  # molecule colours its verdicts
    assert proc.returncode == 0, out[-6000:]
    assert "idempotence" in out.lower()
    for scenario in SCENARIOS:
        assert f"[{scenario} > verify] Executed: Successful" in out, (scenario, out[-6000:])
    assert down["ok"] or "is not up" in (down.get("error") or {}).get("message", ""), down
