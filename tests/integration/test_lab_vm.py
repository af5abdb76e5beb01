"""`berth lab up --vm` refuses what cannot work and leaves nothing behind; no VM is booted.

The VM lab's lifecycle (status, inventory, Ansible, reboot, down) is tested at the end of
test_cgroup_v2.py, on the one VM host that module boots.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from labkit import BERTH

STATE_ROOT = Path(os.environ.get("BERTH_LAB_STATE_DIR") or "/var/lib/berth-lab")


def vm_leftovers(name: str, pids: list[int]) -> list[str]:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    left = [w for w in links.split() if w.startswith((f"bt-{name}-", f"bbr-{name}"))]
    left += [f"pid {p}" for p in pids if Path(f"/proc/{p}").exists()]
    if (STATE_ROOT / name).exists():
        left.append(str(STATE_ROOT / name))
    return left


def _in_private_mount_ns(script: str, state_dir: Path | None = None) -> dict:  # type: ignore[type-arg]
    env = {**os.environ, "BERTH": BERTH}
    if state_dir is not None:
        env["BERTH_LAB_STATE_DIR"] = str(state_dir)
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-ec", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@pytest.mark.lab
def test_up_vm_refuses_a_machine_without_qemu() -> None:
    out = _in_private_mount_ns(
        'mount --bind /dev/null "$(command -v qemu-system-x86_64 || echo /usr/bin/qemu-system-x86_64)"; '
        '"$BERTH" lab up --vm --name bq --hosts 1 --json || true'
    )
    assert out["error"]["kind"] == "unsupported", out
    assert "qemu-system-x86" in out["error"]["message"]
    assert vm_leftovers("bq", []) == []


@pytest.mark.lab
def test_a_failed_image_build_leaves_no_image_and_no_lab(scratch_dir: Path) -> None:
    # A state dir of its own, so the cached image is not found; mmdebstrap fails at once.
    out = _in_private_mount_ns(
        'mount --bind /bin/false "$(command -v mmdebstrap)"; '
        '"$BERTH" lab up --vm --name bf --hosts 1 --json || true',
        state_dir=scratch_dir,
    )
    assert out["error"]["kind"] == "lab-error" and "mmdebstrap failed" in out["error"]["message"], out
    images = scratch_dir / "images"
    assert [p.name for p in images.iterdir() if p.is_dir()] == []  # no image, no half-built dir
    assert not (scratch_dir / "bf").exists()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "bbr-bf" not in links and "bt-bf-" not in links
