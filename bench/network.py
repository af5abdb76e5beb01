"""Networking: what a bridge network adds to a container start (issue 5), Berth and podman.

Inside ONE lab host (`berth lab up --name netbench --hosts 1`), `berth run -d` of the same
busybox-static tree (tests/integration/rootfs.py's BUILD script) with `--network none`, with
`--network bridge` (netns, veth, address, route, /etc/hosts; the default network already
exists), and with `--network bridge -p` (plus a DNAT rule: one nftables transaction). podman
(Debian's 4.3 with runc and systemd cgroups, set up as bench/container_start.py does) starts an
image made from the same tree by `podman import` in the same three modes, on its default
bridge. The rounds alternate runtimes and modes, so drift on this shared machine hits them
alike. The loop runs inside the host (one nsenter for all of it); removal is not timed. The
figure that matters is each runtime's extra over its own `--network none`, and their ratio.
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
    "bridge_before": ["--network", "bridge"],
}
# "Before" (the same run): the CLI with pyroute2's whole package imported first, as it was before
# berth.network.pyroute imported IPRoute alone.
BEFORE = "import sys, pyroute2; from berth.cli import main; sys.argv[0] = 'berth'; sys.exit(main())"
PODMAN = [
    "podman", "--cgroup-manager", "systemd", "--root", "/var/lib/berth/bench-podman",
    "--runroot", "/run/bench-podman", "--storage-driver", "overlay",
]  # fmt: skip
PODMAN_IMAGE = "localhost/netbench:latest"
PODMAN_MODES: dict[str, list[str]] = {
    "none": ["--network", "none"],
    "bridge": ["--network", "bridge"],
    "bridge_port": ["--network", "bridge", "-p", "18081:80"],
}


def inner(rounds: int, with_podman: bool) -> dict[str, dict[str, list[float]]]:
    """Runs inside the lab host: time `berth run -d` (and `podman run -d`) per mode, round-robin."""
    sides = {"berth": MODES, **({"podman": PODMAN_MODES} if with_podman else {})}
    samples: dict[str, dict[str, list[float]]] = {side: {m: [] for m in ms} for side, ms in sides.items()}
    for i in range(rounds + 1):  # round 0 warms caches and creates the default networks
        for side, modes in sides.items():
            for mode, flags in modes.items():
                name = f"nb-{mode.replace('_', '-')}-{i}"
                if side == "berth":
                    cli = [sys.executable, "-c", BEFORE] if mode == "bridge_before" else ["berth"]
                    argv = [*cli, "run", "-d", "--name", name, "--rootfs", ROOTFS, *flags]
                    argv += ["sh", "-c", IDLE]
                    remove = ["berth", "rm", "-f", name]
                else:
                    argv = [*PODMAN, "run", "-d", "--name", name, *flags, PODMAN_IMAGE, "sh", "-c", IDLE]
                    remove = [*PODMAN, "rm", "-f", "-t", "0", name]
                start = time.perf_counter()
                subprocess.run(argv, check=True, capture_output=True)
                elapsed = time.perf_counter() - start
                subprocess.run(remove, check=True, capture_output=True)
                if i:
                    samples[side][mode].append(elapsed)
    subprocess.run(["berth", "network", "rm", "berth"], check=False, capture_output=True)
    return samples


def _build_script() -> str:
    sys.path.insert(0, str(REPO / "bench"))
    from container_start import rootfs_build_script

    return rootfs_build_script()


def run(rounds: int = 15) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "bench"))
    from container_start import ensure_peers

    try:
        versions: dict[str, str] | None = ensure_peers()
    except (OSError, subprocess.CalledProcessError) as exc:  # Berth's side alone, saying why
        print(f"bench: podman unavailable ({exc}); measuring Berth only", file=sys.stderr)
        versions = None
    berth_json("lab", "down", "--name", LAB)
    up = berth_json("lab", "up", "--name", LAB, "--hosts", "1")
    pid = up["data"]["hosts"][0]["pid"]
    enter = ["nsenter", "-t", str(pid), "-a", "env", "-i", f"PATH={HOST_PATH}"]
    try:
        subprocess.run([*enter, "sh", "-s", ROOTFS], input=_build_script(), text=True, check=True)
        if versions is not None:
            load = f"tar -C {ROOTFS} -c . | {' '.join(PODMAN)} import -q - {PODMAN_IMAGE} >/dev/null"
            subprocess.run([*enter, "sh", "-c", load], check=True)
        script = str(Path(__file__).resolve())
        argv = [*enter, str(VENV / "bin" / "python"), script, "inner", str(rounds), str(versions is not None)]
        proc = subprocess.run(argv, capture_output=True, text=True, check=True)
        samples: dict[str, dict[str, list[float]]] = json.loads(proc.stdout)
    finally:
        berth_json("lab", "down", "--name", LAB)
    out: dict[str, Any] = {"rounds": rounds, "runtime": BERTH, "versions": versions or {}}
    for side, modes in samples.items():
        base = statistics.median(modes["none"])
        out[side] = {mode: summary(values) for mode, values in modes.items()}
        out[f"{side}_extra_ms"] = {
            mode: round((statistics.median(values) - base) * 1000, 1)
            for mode, values in modes.items()
            if mode != "none"
        }
    return out


def markdown(results: dict[str, Any]) -> str:
    labels = {
        "none": "`--network none`",
        "bridge": "`--network bridge`",
        "bridge_port": "`--network bridge -p 18080:80`",
        "bridge_before": "before: `--network bridge` with all of pyroute2 imported",
    }
    podman = results.get("podman") if isinstance(results.get("podman"), dict) else None
    rows = [
        "| `run -d` | Berth median s (min-max) | extra over none, ms | podman median s (min-max) "
        "| extra over none, ms | Berth's extra / podman's |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    extra, pextra = results["berth_extra_ms"], results.get("podman_extra_ms") or {}
    for mode, s in results["berth"].items():
        row = f"| {labels.get(mode, mode)} | {_cell(s)} | {extra.get(mode, 0.0):+.1f} "
        p = (podman or {}).get(mode)
        if p:
            ratio = f"{extra[mode] / pextra[mode]:.2f}x" if mode in extra and pextra.get(mode, 0) > 0 else ""
            row += f"| {_cell(p)} | {pextra.get(mode, 0.0):+.1f} | {ratio} |"
        else:
            row += "| not measured | | |"
        rows.append(row)
    versions = results.get("versions") or {}
    if versions:
        peer = f"{versions.get('podman', '?')} with {versions.get('runc', '?')}"
        rows += ["", f"{results['rounds']} rounds; peer: {peer}, its default bridge (CNI), systemd cgroups."]
    return "\n".join(rows)


def _cell(s: dict[str, float]) -> str:
    return f"{s['median']:.3f} ({s['min']:.3f}-{s['max']:.3f})"


if __name__ == "__main__":
    if sys.argv[1:2] == ["inner"]:
        print(json.dumps(inner(int(sys.argv[2]), sys.argv[3:4] == ["True"])))
    else:
        print(json.dumps(run(), indent=2))
