"""VM lab hosts (`berth lab up --vm`): image build, boot, reboot, and a `berth` call in the guest.

Software emulation (qemu TCG) on a shared 2-core machine: figures move with the machine's load,
so the 1-minute load average at each boot is recorded next to them. One VM at a time.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from common import berth_json, summary, timed

LAB = "benchvm"


def _ssh(host: dict[str, Any], argv: str) -> str:
    lab_dir = Path(berth_json("lab", "inventory", "--name", LAB)["data"]["inventory"]).parent
    cmd = [
        "ssh", "-i", str(lab_dir / "id_ed25519"), "-o", f"UserKnownHostsFile={lab_dir / 'known_hosts'}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
        f"root@{host['address']}", argv,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout


def _seconds(text: str, label: str) -> float | None:
    """`systemd-analyze`'s "1min 4.695s (userspace)" as seconds."""
    match = re.search(r"((?:\d+min )?[\d.]+m?s) \(" + label + r"\)", text)
    if not match:
        return None
    total = 0.0
    for value, unit in re.findall(r"([\d.]+)(min|ms|s)", match.group(1)):
        total += float(value) * {"min": 60, "s": 1, "ms": 0.001}[unit]
    return round(total, 2)


def run(rounds: int = 2) -> dict[str, Any]:
    berth_json("lab", "down", "--name", LAB)
    rebuild = os.environ.get("BERTH_BENCH_VM_COLD") == "1"  # a cold image build: minutes, network
    image = berth_json("lab", "image", *(["--rebuild"] if rebuild else []))["data"]
    up, boot, kernel, userspace, reboot, call, down, load = [], [], [], [], [], [], [], []
    for _ in range(rounds):
        load.append(os.getloadavg()[0])
        started = time.monotonic()
        data = berth_json("lab", "up", "--vm", "--name", LAB, "--hosts", "1")["data"]
        up.append(time.monotonic() - started)
        host = data["hosts"][0]
        boot.append(host["boot_seconds"])
        analyze = _ssh(host, "systemd-analyze")
        k, u = _seconds(analyze, "kernel"), _seconds(analyze, "userspace")
        if k is not None and u is not None:
            kernel.append(k)
            userspace.append(u)
        for _ in range(3):
            call.append(timed(lambda host=host: _ssh(host, "berth --json version")))
        reboot.append(timed(lambda host=host: berth_json("lab", "reboot", host["name"], "--name", LAB)))
        down.append(timed(lambda: berth_json("lab", "down", "--name", LAB)))
    return {
        "image": {
            "recipe_hash": image["recipe_hash"],
            "cold_build_seconds": image["build_seconds"],
            "cached_lookup_seconds": image["seconds"] if not image["built"] else None,
            "kernel": image["kernel"],
        },
        "load_avg_1min": summary(load),
        "up_seconds": summary(up),
        "boot_seconds": summary(boot),
        "guest_kernel_seconds": summary(kernel) if kernel else None,
        "guest_userspace_seconds": summary(userspace) if userspace else None,
        "reboot_seconds": summary(reboot),
        "ssh_berth_version_seconds": summary(call),
        "down_seconds": summary(down),
    }


def markdown(results: dict[str, Any]) -> str:
    def cell(s: dict[str, float] | None) -> str:
        return "-" if not s else f"{s['median']:.1f} ({s['min']:.1f}-{s['max']:.1f})"

    image = results["image"]
    kernel, userspace = results["guest_kernel_seconds"], results["guest_userspace_seconds"]
    calls = results["ssh_berth_version_seconds"]
    rows = [
        "| one VM host (qemu TCG, 2 vCPUs, 1 GiB) | median (min-max) s |",
        "|---|---:|",
        f"| `lab up --vm --hosts 1` (image cached) | {cell(results['up_seconds'])} |",
        f"| of which the guest's kernel | {cell(kernel)} |",
        f"| of which the guest's userspace (systemd to `multi-user`) | {cell(userspace)} |",
        f"| `lab reboot` (ACPI power-off, boot on the same disk) | {cell(results['reboot_seconds'])} |",
        f"| `ssh host berth --json version` (a new SSH connection each) | {cell(calls)} |",
        f"| `lab down` | {cell(results['down_seconds'])} |",
        f"| machine load average (1 min) at boot | {cell(results['load_avg_1min'])} |",
        "",
        f"Image {image['recipe_hash']} (kernel {image['kernel']}): a cold build (mmdebstrap, mkfs.ext4) "
        f"took {image['cold_build_seconds']} s; later `up`s find it in the cache.",
    ]  # fmt: skip
    return "\n".join(rows)
