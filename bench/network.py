"""Networking: what a bridge network adds to a container start (issue 5), Berth's side.

Inside ONE lab host (`berth lab up --name netbench --hosts 1`), `berth run -d` of the same
busybox-static tree (tests/integration/rootfs.py's BUILD script) with `--network none`, with
`--network bridge` (netns, veth, address, route, /etc/hosts; the default network already
exists), and with `--network bridge -p` (plus a DNAT rule: one nftables transaction). The
rounds alternate the modes, so drift on this shared machine hits them alike. The loop runs
inside the host (one nsenter for all of it); removal is not timed. podman's side (netavark)
is added by its own engineer under `results["podman"]`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import BERTH, REPO, VENV, berth_json, summary

LAB = "netbench"
ROOTFS = "/var/lib/berth/bench-rootfs"
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# PID 1 of a pid namespace ignores SIGTERM unless it handles it: this one does, so removal is quick.
IDLE = 'trap "exit 0" TERM; sleep 600 & wait'
MODES: dict[str, list[str]] = {
    "none": ["--network", "none"],
    "bridge": ["--network", "bridge"],
    "bridge_port": ["--network", "bridge", "-p", "18080:80"],
}


def inner(rounds: int) -> dict[str, list[float]]:
    """Runs inside the lab host: time `berth run -d` per mode, round-robin."""
    samples: dict[str, list[float]] = {m: [] for m in MODES}
    for i in range(rounds + 1):  # round 0 warms caches and creates the default network
        for mode, flags in MODES.items():
            name = f"nb-{mode.replace('_', '-')}-{i}"
            argv = ["berth", "run", "-d", "--name", name, "--rootfs", ROOTFS, *flags, "sh", "-c", IDLE]
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            elapsed = time.perf_counter() - start
            subprocess.run(["berth", "rm", "-f", name], check=True, capture_output=True)
            if i:
                samples[mode].append(elapsed)
    subprocess.run(["berth", "network", "rm", "berth"], check=False, capture_output=True)
    return samples


def _build_script() -> str:
    sys.path.insert(0, str(REPO / "bench"))
    from container_start import rootfs_build_script

    return rootfs_build_script()


def run(rounds: int = 15) -> dict[str, Any]:
    berth_json("lab", "down", "--name", LAB)
    up = berth_json("lab", "up", "--name", LAB, "--hosts", "1")
    pid = up["data"]["hosts"][0]["pid"]
    enter = ["nsenter", "-t", str(pid), "-a", "env", "-i", f"PATH={HOST_PATH}"]
    try:
        subprocess.run([*enter, "sh", "-s", ROOTFS], input=_build_script(), text=True, check=True)
        proc = subprocess.run(
            [*enter, str(VENV / "bin" / "python"), str(Path(__file__).resolve()), "inner", str(rounds)],
            capture_output=True,
            text=True,
            check=True,
        )
        samples: dict[str, list[float]] = json.loads(proc.stdout)
    finally:
        berth_json("lab", "down", "--name", LAB)
    base = statistics.median(samples["none"])
    return {
        "berth": {mode: summary(values) for mode, values in samples.items()},
        "berth_extra_ms": {
            mode: round((statistics.median(values) - base) * 1000, 1)
            for mode, values in samples.items()
            if mode != "none"
        },
        "rounds": rounds,
        "runtime": BERTH,
    }


def markdown(results: dict[str, Any]) -> str:
    labels = {
        "none": "`--network none`",
        "bridge": "`--network bridge`",
        "bridge_port": "`--network bridge -p 18080:80`",
    }
    rows = [
        "| `berth run -d` | median s | min-max s | extra over none, ms |",
        "|---|---:|---:|---:|",
    ]
    extra = results["berth_extra_ms"]
    for mode, s in results["berth"].items():
        rows.append(
            f"| {labels.get(mode, mode)} | {s['median']:.3f} | {s['min']:.3f}-{s['max']:.3f} "
            f"| {extra.get(mode, 0.0):+.1f} |"
        )
    podman = results.get("podman")
    if podman:
        rows += ["", f"podman (netavark): {json.dumps(podman)}"]
    return "\n".join(rows)


if __name__ == "__main__":
    if sys.argv[1:2] == ["inner"]:
        print(json.dumps(inner(int(sys.argv[2]))))
    else:
        print(json.dumps(run(), indent=2))
