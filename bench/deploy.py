"""Rollback to the previous revision: `berth rollback` against podman's stop + run (issue 7).

Measured the same way on every side: from the moment the command is issued (from the machine,
through `nsenter` into the server host: every side pays it) until a client on another lab host
gets the previous version's page from the service port. The client polls in a tight loop inside
its own host (`wget` with a 1 s timeout), started before the command.

A lab of 2 hosts; the same busybox httpd content on every side (tests/integration/rootfs.py's
busybox tree plus a page `v1` or `v2`, served by `httpd -f -p 80 -h /www`):

- **berth**: the deployment tests' images app:1 and app:2 (built by `berth image build` from
  the busybox tree, tests/integration/deploy_helpers.py), deployment `bench` publishing 8080:80
  (Berth's bridge network, nftables DNAT). Each round deploys v2 (untimed) and times
  `berth rollback bench` to v1. Health gate: one HTTP GET every 20 ms, min_healthy 0; drain 0.
- **podman_bridge**: podman 4.3 with runc (set up as bench/container_start.py does: Debian's
  packages, its containers.conf, storage under the host's /var/lib/berth), images imported
  (`podman import`) from the same trees, published with `-p 8081:80` on podman's default bridge
  network (CNI, iptables DNAT): the comparable setup. Each round starts app-v2 (untimed), then
  times `podman stop -t 0 app-v2 && podman run -d --name app-v1 -p 8081:80 app:1`.
- **podman_host**: the same with `--network host` (httpd on 8082 in the host's namespace): podman
  without any network setup, its fastest way.

podman has no health gate and no traffic switch: the new container serves as soon as httpd binds,
and the old one is stopped first (downtime). Berth starts the old revision beside the new one,
gates it, moves the port atomically, then stops the other revision.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from common import REPO, summary

sys.path.insert(0, str(REPO / "tests" / "integration"))

LAB = "benchdep"
PORTS = {"berth": 8080, "podman_bridge": 8081, "podman_host": 8082}
STORE = "--root /var/lib/berth/bench-podman --runroot /run/bench-podman --storage-driver overlay"
PODMAN = f"podman --cgroup-manager systemd {STORE}"
CMD = '["httpd", "-f", "-p", "{port}", "-h", "/www"]'


def _poller(lab: Any, client: str, url: str, body: str) -> subprocess.Popen[bytes]:
    """A client loop inside `client` that ends when `url` answers `body`."""
    until = f'until [ "$(timeout 1 wget -qO- {url} 2>/dev/null)" = "{body}" ]; do :; done'
    return subprocess.Popen(
        ["nsenter", "-t", str(lab.pids[client]), "-a", "timeout", "30", "sh", "-c", until]
    )


def _wait_for(lab: Any, client: str, url: str, body: str) -> None:
    if _poller(lab, client, url, body).wait(timeout=40) != 0:
        raise RuntimeError(f"{url} never answered {body!r}")


def _timed(lab: Any, server: str, client: str, url: str, argv: list[str]) -> tuple[float, float]:
    """(until the client gets v1, until the command returned), from issuing `argv` on `server`."""
    poll = _poller(lab, client, url, "v1")
    time.sleep(0.05)  # the poller is in its loop
    start = time.monotonic()
    cmd = subprocess.Popen(["nsenter", "-t", str(lab.pids[server]), "-a", *argv], stdout=subprocess.DEVNULL)
    if poll.wait(timeout=40) != 0:
        cmd.wait(timeout=60)
        raise RuntimeError(f"{' '.join(argv)}: {url} never served v1")
    serving = time.monotonic() - start
    if cmd.wait(timeout=60) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed")
    return serving, time.monotonic() - start


def _prepare_podman(lab: Any, server: str) -> None:
    """app:1 and app:2 for podman from the same trees: the busybox rootfs plus the page."""
    from rootfs import ROOTFS

    for v in (1, 2):
        for side in ("podman_bridge", "podman_host"):
            port = 80 if side == "podman_bridge" else PORTS[side]
            tag = f"localhost/app-{side}:{v}"
            script = (
                f"set -e; d=/var/lib/berth/pm-v{v}; rm -rf $d; cp -a {ROOTFS} $d; mkdir -p $d/www; "
                f"echo v{v} > $d/www/index.html; tar -C $d -c . | {PODMAN} import -q "
                f"--change 'CMD {CMD.format(port=port)}' - {tag} >/dev/null"
            )
            lab.run(server, ["sh", "-c", script], timeout=300)


def _podman_run(side: str, v: int) -> str:
    net = f"-p {PORTS[side]}:80" if side == "podman_bridge" else "--network host"
    return f"{PODMAN} run -d --name app-v{v} {net} localhost/app-{side}:{v} >/dev/null"


def run(rounds: int = 10, warmup: int = 1) -> dict[str, Any]:
    from ansible_lab import alternate, compile_runtime, load
    from container_start import ensure_peers
    from deploy_helpers import prepare_host, spec, write_spec
    from labkit import berth, boot_lab

    versions = ensure_peers()
    compile_runtime()
    berth("lab", "down", "--name", LAB, check=False)
    lab = boot_lab(LAB, 2)
    try:
        server, client = lab.hosts
        prepare_host(lab, server)
        _prepare_podman(lab, server)
        fast = {"interval": "20ms", "timeout": "1s", "retries": 3, "min_healthy": 0, "deadline": "10s"}
        docs = {}
        for v in (1, 2):
            doc = spec(v, name="bench", drain=0)
            doc["containers"][0]["health"] = {"http": {"port": 80}, **fast}
            docs[v] = write_spec(lab, server, doc, f"/var/lib/berth/bench-v{v}.json")
        lab.berth(server, "deploy", "bench", "-f", docs[1])
        urls = {side: f"http://{lab.addresses[server]}:{port}/" for side, port in PORTS.items()}

        def measure(side: str, i: int) -> tuple[float, float]:
            url = urls[side]
            if side == "berth":
                lab.berth(server, "deploy", "bench", "-f", docs[2])
                _wait_for(lab, client, url, "v2")
                return _timed(lab, server, client, url, ["berth", "rollback", "bench"])
            lab.run(
                server,
                ["sh", "-c", f"{PODMAN} rm -f -t 0 app-v1 app-v2 >/dev/null 2>&1; {_podman_run(side, 2)}"],
            )
            _wait_for(lab, client, url, "v2")
            script = f"{PODMAN} stop -t 0 app-v2 >/dev/null && {_podman_run(side, 1)}"
            try:
                return _timed(lab, server, client, url, ["sh", "-c", script])
            finally:
                lab.run(server, ["sh", "-c", f"{PODMAN} rm -f -t 0 app-v1 app-v2 >/dev/null 2>&1; true"])

        loads = [load()]
        samples = alternate(list(PORTS), rounds, warmup, measure)
        loads.append(load())
        steps = lab.berth(server, "history", "bench")["data"]["events"][-1]["timings"]
        out: dict[str, Any] = {"rounds": rounds, "warmup": warmup, "load": loads, "versions": versions}
        for side, s in samples.items():
            out[side] = {"to_serving_s": summary([a for a, _ in s]), "command_s": summary([b for _, b in s])}
        out["berth"]["last_steps_s"] = steps
        before = REPO / "bench" / "results" / "rollback-before.json"
        if before.exists():  # the run before the ExecStartPre hook's shortcut (network/hook.py)
            out["before_hook_shortcut"] = json.loads(before.read_text())
        for side in ("podman_bridge", "podman_host"):
            peer = out[side]["to_serving_s"]["median"]
            out[f"ratio_to_{side}"] = (
                round(out["berth"]["to_serving_s"]["median"] / peer, 2) if peer else None
            )
        return out
    finally:
        berth("lab", "down", "--name", LAB, check=False)


def markdown(r: dict[str, Any]) -> str:
    labels = {
        "berth": "`berth rollback bench` (start v1 beside v2, HTTP gate, port switch, stop v2)",
        "podman_bridge": "`podman stop -t 0 app-v2 && podman run -d -p 8081:80 app:1` (bridge, CNI)",
        "podman_host": "same with `--network host`",
    }
    rows = [
        f"A lab of 2 hosts; the client polls the server's port from the other host. {r['rounds']} rounds "
        f"after {r['warmup']} warm-up, sides alternating; {r['versions'].get('podman', 'podman')} with "
        f"{r['versions'].get('runc', 'runc')}, `--cgroup-manager systemd`. Load (1-minute average) "
        f"{' → '.join(str(x) for x in r['load'])}.",
        "",
        "| side | to serving v1: median (min-max) s | command returned: median s "
        "| ratio to podman (bridge) |",
        "|---|---:|---:|---:|",
    ]
    peer = r["podman_bridge"]["to_serving_s"]["median"]
    for side, label in labels.items():
        s, c = r[side]["to_serving_s"], r[side]["command_s"]
        rows.append(
            f"| {label} | {s['median']:.3f} ({s['min']:.3f}-{s['max']:.3f}) | {c['median']:.3f} "
            f"| {s['median'] / peer:.2f}x |"
        )
    steps = r["berth"].get("last_steps_s") or {}
    rows += [
        "",
        "Target: Berth's rollback under 0.300 s to serving. Berth's steps in the last round (s): "
        + ", ".join(f"{k} {v}" for k, v in steps.items())
        + ". Every side includes entering the server host with `nsenter` and its command's process start "
        "(Berth: Python and the CLI).",
    ]
    b = r.get("before_hook_shortcut")
    if b:
        bs, bp = b["berth"]["to_serving_s"], b["podman_bridge"]["to_serving_s"]
        rows += [
            "",
            f"Before: the same benchmark at {b['measured_at']} "
            f"(load {' → '.join(str(x) for x in b['load'])}), "
            "before the shortcut in the network hook that a deployment container's unit runs as "
            "ExecStartPre (`restart: always`): a second Python process that imported pyroute2 and the "
            f"container spec at every start. Berth {bs['median']:.3f} s ({bs['min']:.3f}-{bs['max']:.3f}) "
            f"to serving, podman (bridge) {bp['median']:.3f} s: {bs['median'] / bp['median']:.2f}x; "
            f"Berth's steps then: {', '.join(f'{k} {v}' for k, v in b['berth']['last_steps_s'].items())}.",
        ]
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    sys.path.insert(0, str(REPO / "bench"))
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5), indent=2))
