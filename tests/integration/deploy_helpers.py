"""Shared by the deployment tests: app images v1..v3 on lab hosts, specs, and a looping client.

Every host builds the same images from the same context (busybox rootfs imported as `base`,
then `COPY` of a page and `CMD httpd`), so digests agree across the fleet without a registry.
v3 listens on the wrong port: its HTTP health check can never pass.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from labkit import Lab
from rootfs import ROOTFS, build_rootfs

CTX = "/var/lib/berth/deploy-ctx"
PORT = 8080
CONTAINERFILE = """\
FROM base
COPY www /www
CMD ["httpd", "-f", "-p", "{port}", "-h", "/www"]
"""


def prepare_host(lab: Lab, host: str) -> dict[str, str]:
    """Build base and app:1..3 on `host` (idempotent); return tag -> digest."""
    build_rootfs(lab, host)
    script = f"""
set -e
mkdir -p {CTX}
[ -f {CTX}/base.tar ] || tar -C {ROOTFS} -cf {CTX}/base.tar .
for v in 1 2 3; do
  mkdir -p {CTX}/v$v/www
  echo v$v > {CTX}/v$v/www/index.html
done
"""
    lab.run(host, ["sh", "-c", script])
    lab.berth(host, "image", "import", "-t", "base", f"{CTX}/base.tar")
    digests = {}
    for v, port in ((1, 80), (2, 80), (3, 81)):
        lab.run(host, ["sh", "-c", f"cat > {CTX}/v{v}/Containerfile"], input=CONTAINERFILE.format(port=port))
        out = lab.berth(host, "image", "build", "-t", f"app:{v}", f"{CTX}/v{v}")
        digests[f"app:{v}"] = out["data"]["digest"]
    return digests


def spec(version: int, name: str = "shop", port: int = PORT, **extra: Any) -> dict[str, Any]:
    health = {"http": {"port": 80, "path": "/"}, "interval": "100ms", "timeout": "1s",
              "retries": 3, "min_healthy": "300ms", "deadline": "10s"}  # fmt: skip
    doc: dict[str, Any] = {
        "name": name,
        "keep": 3,
        "drain": "500ms",
        "containers": [
            {
                "role": "web",
                "image": f"app:{version}",
                "ports": [f"{port}:80"],
                "health": health,
                "stop_signal": "KILL",
            }
        ],
    }
    doc.update(extra)
    return doc


def write_spec(lab: Lab, host: str, doc: dict[str, Any], path: str = "/var/lib/berth/deploy.json") -> str:
    lab.run(host, ["sh", "-c", f"cat > {path}"], input=json.dumps(doc))
    return path


def serving(lab: Lab, host: str, via: str | None = None, port: int = PORT) -> str:
    """What the service port of `host` answers (asked from `via`, default another host)."""
    client = via or next(h for h in lab.hosts if h != host)
    url = f"http://{lab.addresses[host]}:{port}/"
    proc = lab.run(client, ["timeout", "3", "wget", "-qO-", url], check=False)
    if not proc.stdout.strip():  # shown by pytest when the test fails: why nothing answered
        again = lab.run(client, ["timeout", "3", "wget", "-qO-", url], check=False)
        state = lab.run(host, ["sh", "-c", _diagnose_host(port)], check=False)
        seen = lab.run(client, ["ip", "neigh", "show", lab.addresses[host]], check=False)
        first = f"exit {proc.returncode} {proc.stderr!r}"
        second = f"exit {again.returncode} {again.stdout!r} {again.stderr!r}"
        print(f"{client} -> {url}: {first}; a second try: {second}\n{state.stdout}{state.stderr}")
        print(f"seen from {client}:\n{seen.stdout}{seen.stderr}")
    return proc.stdout.strip()


def _diagnose_host(port: int) -> str:
    """A shell script for the serving host: its deployments' state, the port's DNAT, its
    bridge, and, inside every running container, the routes and neighbours it replies with."""
    return (
        "berth status shop 2>&1 | head -30; berth network ports 2>&1; "
        "nft list table ip berth 2>&1 | head -60; systemctl list-units --plain --no-legend 'berth-*'; "
        "ip -br link show eth0; ip neigh show dev berth0; ip -o link show master berth0; "
        "cat /proc/sys/net/ipv4/ip_forward; "
        f"echo '# from the host itself:'; timeout 3 wget -qO- http://127.0.0.1:{port}/ || echo 'no answer'; "
        "echo '# conntrack for the port:'; "
        f"grep -E 'dport={port} |sport=80 ' /proc/net/nf_conntrack 2>&1 | tail -8; "
        "for u in $(systemctl list-units --plain --no-legend 'berth-*.service' | cut -d' ' -f1); do "
        'pid=$(systemctl show -P MainPID $u); [ "$pid" -gt 0 ] 2>/dev/null || continue; '
        'echo "# inside $u (pid $pid):"; nsenter -t $pid -n sh -c \'ip -o -4 addr; ip route; ip neigh; '
        "nstat -az TcpExtListenDrops TcpExtListenOverflows TcpInSegs TcpOutSegs IpOutNoRoutes "
        "2>/dev/null'; done"
    )


@dataclass
class Looper:
    """A client on one lab host that GETs the service port of others in a loop; counts failures.

    One long-lived shell loop inside the client host (no nsenter per request): it prints one
    line per request, `ok <body>` or `fail`.
    """

    lab: Lab
    client: str
    targets: list[str]
    port: int = PORT
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def __enter__(self) -> Looper:
        urls = " ".join(f"http://{self.lab.addresses[t]}:{self.port}/" for t in self.targets)
        script = (
            f"while :; do for u in {urls}; do "
            'if b=$(timeout 2 wget -qO- $u 2>/dev/null); then echo "ok $u $b"; '
            'else echo "fail $u rc=$?"; fi; '
            "done; done"
        )
        cmd = ["nsenter", "-t", str(self.lab.pids[self.client]), "-a", "sh", "-c", script]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)

    @property
    def failures(self) -> list[str]:
        return [line for line in self.lines if line.startswith("fail")]

    def bodies(self) -> set[str]:
        return {line.split()[-1] for line in self.lines if line.startswith("ok")}
