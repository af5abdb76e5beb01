"""Running one probe against one running container, from Berth's own process.

TCP and HTTP probes run inside the container's network namespace (this thread joins it for the
probe: the socket stays there), so they reach 127.0.0.1 of the container whatever its network
mode, and never depend on published ports or on the traffic switch. Exec probes run the command
in the container through the shim's `exec`, the same path as `berth exec`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth.deployments.health import Health

OUTPUT_LIMIT = 400


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    output: str


def probe(health: Health, container: str, main_pid: int) -> ProbeResult:
    if health.kind == "running":
        return ProbeResult(True, "running")
    if health.kind == "exec":
        return _exec(health, container, main_pid)
    from berth.network import netns

    with netns.inside(Path(f"/proc/{main_pid}/ns/net")):
        if health.kind == "tcp":
            return _tcp(health)
        return _http(health)


def _tcp(health: Health) -> ProbeResult:
    try:
        with socket.create_connection((health.host, health.port), timeout=health.timeout):
            return ProbeResult(True, f"connected to {health.host}:{health.port}")
    except OSError as exc:
        return ProbeResult(False, f"tcp {health.host}:{health.port}: {exc.strerror or exc}")


def _http(health: Health) -> ProbeResult:
    import http.client

    conn = http.client.HTTPConnection(health.host, health.port, timeout=health.timeout)
    where = f"http://{health.host}:{health.port}{health.path}"
    try:
        conn.request("GET", health.path, headers={"User-Agent": "berth-health", "Connection": "close"})
        response = conn.getresponse()
        body = response.read(OUTPUT_LIMIT).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return ProbeResult(False, f"GET {where}: {getattr(exc, 'strerror', None) or exc}")
    finally:
        conn.close()
    low, high = health.status
    ok = low <= response.status <= high
    return ProbeResult(ok, f"GET {where}: {response.status} {body.strip()[:200]}")


def _exec(health: Health, container: str, main_pid: int) -> ProbeResult:
    from berth.containers.config import SHIM
    from berth.containers.paths import ContainerPaths

    request: dict[str, Any] = {"args": list(health.command), "env": {}, "user": None, "workdir": None,
               "interactive": False, "tty": False, "term": None}  # fmt: skip
    argv = [sys.executable, "-S", str(SHIM), "exec", str(ContainerPaths.of(container).config),
            str(main_pid), json.dumps(request)]  # fmt: skip
    try:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=health.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return ProbeResult(False, f"{' '.join(health.command)}: timed out after {health.timeout}s")
    output = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip()[-OUTPUT_LIMIT:]
    return ProbeResult(proc.returncode == 0, f"exit status {proc.returncode}: {output}".rstrip(": "))
