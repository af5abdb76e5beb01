"""One lab host with Berth and podman side by side, and a driver run inside it.

The memory and scaling sections run their measuring loop inside the host (as
bench/container_start.py does), so neither side pays for `nsenter`, and `/proc` shows the
host's own processes only. This module boots the host, prepares the same busybox-static tree
for both runtimes (Berth's `--rootfs`, podman's image through `podman import`, a rootfs tar for
`berth image import`), copies the driver modules into the host's /run and runs
`python DRIVER inner CONFIG`, whose stdout is the section's JSON figures. The lab is torn down in
a `finally`, whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from common import BERTH, REPO, VENV, berth_json
from container_start import IMAGE, ROOTFS, _podman, ensure_peers, nsenter, rootfs_build_script

DRIVER_DIR = "/run/bench-driver"
ROOTFS_TAR = "/var/lib/berth/bench-rootfs.tar"
DRIVER_FILES = ("common.py", "container_start.py", "inlab.py", "memory.py", "scaling.py")


def load() -> list[float]:
    """The machine's load average (1, 5, 15 min): the machine is shared, so every figure says it."""
    return [round(x, 2) for x in os.getloadavg()]


def run_inside(lab: str, driver: str, cfg: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
    """Boot lab `lab` (1 host), prepare both runtimes, run `driver inner cfg` in it; its figures."""
    versions = ensure_peers()
    subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "compileall", "-q", str(REPO / "runtime" / "berth")],
        check=False,
        stdout=subprocess.DEVNULL,
    )
    berth_json("lab", "down", "--name", lab)
    up = berth_json("lab", "up", "--name", lab, "--hosts", "1")
    try:
        pid = int(up["data"]["hosts"][0]["pid"])
        nsenter(pid, ["sh", "-s", ROOTFS], input=rootfs_build_script(), check=True, capture_output=True)
        here = Path(__file__).resolve().parent
        for name in (n for n in DRIVER_FILES if (here / n).exists()):
            nsenter(
                pid,
                ["sh", "-c", f"mkdir -p {DRIVER_DIR} && cat > {DRIVER_DIR}/{name}"],
                input=(here / name).read_text(),
                check=True,
            )
        argv = [
            f"VENV={VENV}",
            str(VENV / "bin" / "python"),
            f"{DRIVER_DIR}/{driver}",
            "inner",
            json.dumps(cfg),
        ]
        proc = nsenter(pid, argv, capture_output=True, check=False, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{driver} inner run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
        results: dict[str, Any] = json.loads(proc.stdout)
        results["versions"] = {**results.get("versions", {}), **versions}
        return results
    finally:
        berth_json("lab", "down", "--name", lab)


# -- inside the lab host ------------------------------------------------------------------------
def prepare_images() -> None:
    """podman's image and Berth's rootfs tar, both from the busybox tree at ROOTFS."""
    subprocess.run(["tar", "-C", ROOTFS, "-cf", ROOTFS_TAR, "."], check=True)
    with open(ROOTFS_TAR, "rb") as fh:
        subprocess.run(
            [*_podman("systemd"), "import", "-q", "-", IMAGE], stdin=fh, check=True, stdout=subprocess.DEVNULL
        )


def host_versions() -> dict[str, str]:
    systemd = subprocess.run(["systemctl", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "systemd": systemd,
        "cgroups": "v2" if not Path("/sys/fs/cgroup/memory").is_dir() else "v1 (hybrid)",
        "berth": subprocess.run([BERTH, "version"], capture_output=True, text=True).stdout.strip(),
    }


def cleanup_podman() -> None:
    subprocess.run([*_podman("systemd"), "rm", "-a", "-f", "-t", "0"], capture_output=True, check=False)
