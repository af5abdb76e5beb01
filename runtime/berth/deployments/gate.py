"""The health gate: every container of a revision healthy, or the reason it is not.

One loop in this process probes every container in turn (no timer unit per probe). A `notify`
role passes once systemd has its READY=1 (the start waits for it: see `start_revision`). A container
passes once its probe has succeeded and kept succeeding for `min_healthy` seconds. It fails at
once when its process exits or is OOM-killed (even if systemd restarts it: the exit record the
shim writes at every exit says so), after `retries` consecutive failed probes outside the start
period, or when the gate's `deadline` passes first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from berth.containers import lifecycle
from berth.containers.paths import ContainerPaths
from berth.deployments.health import Health
from berth.deployments.probes import ProbeResult, probe
from berth.systemd.status import UnitState
from berth.systemd.sync import Systemd
from berth.units.observe import live_state

LOG_LINES = 10


@dataclass
class Watch:
    role: str
    container: str
    health: Health
    first_ok: float | None = None
    failures: int = 0
    probes: int = 0
    next_at: float = 0.0
    last: ProbeResult | None = None


@dataclass
class GateResult:
    passed: bool
    seconds: float
    reason: str = ""
    role: str | None = None
    container: str | None = None
    exit: dict[str, Any] | None = None
    probe: str | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    probes: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "result": "passed" if self.passed else "failed",
            "seconds": round(self.seconds, 3),
            "probes": self.probes,
        }
        if not self.passed:
            out.update(
                reason=self.reason,
                role=self.role,
                container=self.container,
                exit=self.exit,
                probe=self.probe,
                logs=self.logs,
            )
        return out


def last_logs(container: str, lines: int = LOG_LINES) -> list[dict[str, Any]]:
    """The container's last journal lines, as `berth logs --json` gives them."""
    import subprocess

    argv = ["journalctl", "--no-pager", f"_SYSTEMD_UNIT=berth-{container}.service",
            f"SYSLOG_IDENTIFIER={container}", f"--lines={lines}", "--output=json"]  # fmt: skip
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    entries = []
    for line in out.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        entries.append({"time_usec": int(doc.get("__REALTIME_TIMESTAMP", 0)), "message": doc.get("MESSAGE")})
    return entries


def exited(container: str) -> dict[str, Any] | None:
    """Why the container's process ended since its start, or None while it has not."""
    paths = ContainerPaths.of(container)
    try:
        info = json.loads(paths.exit_file.read_text())
    except (FileNotFoundError, ValueError):
        info = None
    try:
        error = paths.error_file.read_text().strip() or None
    except FileNotFoundError:
        error = None
    return lifecycle.exit_reason(info, error)


def ready(live: UnitState) -> ProbeResult:
    """The `notify` probe: systemd makes the unit active only once the app's READY=1 arrived."""
    status = live.properties.get("StatusText") or ""
    said = f" (STATUS={status})" if status else ""
    if live.active_state == "active":
        return ProbeResult(True, f"READY=1 received{said}")
    return ProbeResult(False, f"no READY=1 yet: unit is {live.active_state}/{live.sub_state}{said}")


def not_ready(role: str, container: str, why: str, seconds: float) -> GateResult:
    """The gate's verdict on a `notify` role whose start failed: no READY=1, and why not."""
    time.sleep(0.2)  # journald takes the last lines asynchronously
    return GateResult(
        False, seconds, f"container {container} {why}", role, container, exited(container),
        "no READY=1", last_logs(container), {role: 0},
    )  # fmt: skip


def _exit_text(reason: dict[str, Any]) -> str:
    if reason["reason"] == "exited":
        return f"exited with status {reason.get('exit_code')}"
    if reason["reason"] == "signal":
        return f"was killed by signal {reason.get('signal')}"
    if reason["reason"] == "oom-killed":
        return "was killed by the OOM killer"
    if reason["reason"] == "failed-to-start":
        return f"failed to start: {reason.get('error')}"
    return f"stopped ({reason['reason']})"


def run_gate(
    systemd: Systemd,
    watches: list[Watch],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> GateResult:
    start = clock()
    deadline = start + max(w.health.deadline for w in watches)

    def fail(w: Watch, reason: str, exit_info: dict[str, Any] | None = None) -> GateResult:
        sleep(0.2)  # journald takes the last lines asynchronously
        return GateResult(
            False,
            clock() - start,
            reason,
            w.role,
            w.container,
            exit_info,
            w.last.output if w.last else None,
            last_logs(w.container),
            {x.role: x.probes for x in watches},
        )

    while True:
        now = clock()
        for w in watches:
            reason = exited(w.container)
            live = live_state(systemd, f"berth-{w.container}.service")
            if reason is None and not live.running:
                reason = {"reason": "stopped", "exit_code": None, "signal": None}
            if reason is not None:
                return fail(w, f"container {w.container} {_exit_text(reason)}", reason)
            if now < w.next_at:
                continue
            w.last = ready(live) if w.health.kind == "notify" else probe(w.health, w.container, live.main_pid)
            w.probes += 1
            now = clock()
            w.next_at = now + w.health.interval
            if w.last.ok:
                w.failures = 0
                if w.first_ok is None:
                    w.first_ok = now
            else:
                w.first_ok = None
                if now - start >= w.health.start_period:
                    w.failures += 1
                    if w.failures >= w.health.retries:
                        return fail(
                            w,
                            f"container {w.container} failed {w.failures} health probes in a row: "
                            f"{w.last.output}",
                        )
        now = clock()
        if all(w.first_ok is not None and now - w.first_ok >= w.health.min_healthy for w in watches):
            return GateResult(True, now - start, probes={w.role: w.probes for w in watches})
        if now >= deadline:
            slow = next(w for w in watches if w.first_ok is None or now - w.first_ok < w.health.min_healthy)
            detail = f": {slow.last.output}" if slow.last else ""
            return fail(
                slow, f"container {slow.container} not healthy within {slow.health.deadline}s{detail}"
            )
        waits = [w.next_at - now for w in watches]
        waits += [w.first_ok + w.health.min_healthy - now for w in watches if w.first_ok is not None]
        sleep(max(0.01, min(0.1, min(x for x in waits if x > 0) if any(x > 0 for x in waits) else 0.01)))
