"""The liveness monitor of a deployment: one small process per deployment, in a unit of its own.

After a revision passed its gate and serves, `berth monitor NAME --revision N` runs as the
transient unit `berth-monitor@NAME.service` (no daemon: systemd supervises it, restarts it if
it crashes, and it is started again at boot by `berth restore` with the deployment). It probes
the roles that have a `liveness` check, in one loop, and after `failures` failed probes in a row
restarts the container (action `restart`: its service ports are pointed at it again) or only
records it (`none`). The last results are in `<data dir>/monitors/NAME.json`, which
`berth status` shows. Deploys, rollbacks and undeploys stop the monitor first and start the
serving revision's afterwards (actions `stop-monitor`, `start-monitor`), so it never probes a
container that a deploy is replacing. Its journal entries carry BERTH_DEPLOYMENT and
BERTH_REVISION, as the containers' do.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from berth.containers.paths import unit_name as container_unit
from berth.deployments import records
from berth.deployments.liveness import Liveness
from berth.deployments.probes import ProbeResult, probe
from berth.deployments.revision import now
from berth.errors import BerthError, NotFound
from berth.state.store import RecordStore
from berth.systemd.properties import to_dbus
from berth.systemd.sync import Systemd
from berth.units.observe import live_state

REVISION_ENV = "BERTH_MONITOR_REVISION"
MAX_EVENTS = 20
HEARTBEAT = 10.0  # seconds between writes of the state when nothing changes
OUTPUT_MAX = 200  # characters of a probe's output kept (one journal line)
PASSED_ENV = ("BERTH_DATA_DIR", "BERTH_RUN_DIR")  # where this runtime keeps its state


def unit_name(deployment: str) -> str:
    """`@` cannot occur in a container name, so no container unit can take this name."""
    return f"berth-monitor@{deployment}.service"


def store() -> RecordStore:
    return RecordStore("monitors")


def wanted(rev: dict[str, Any] | None) -> bool:
    """Whether revision `rev` has a role with a liveness check."""
    return rev is not None and any(role.get("liveness") for role in rev["content"]["roles"])


def watching(systemd: Systemd, deployment: str) -> int | None:
    """The revision a running monitor watches (None: no monitor runs)."""
    if store().get(deployment) is None:  # never started (every start writes it): no D-Bus call
        return None
    live = live_state(systemd, unit_name(deployment))
    if not live.running:
        return None
    value = live.env(REVISION_ENV)
    return int(value) if value and value.isdigit() else None


def start(systemd: Systemd, deployment: str, revision: int, rev: dict[str, Any] | None = None) -> None:
    """Start the monitor unit of `deployment` watching `revision` (replacing any other).

    With the revision's record `rev`, the roles it watches are in the monitor's state from the
    start (no probe yet), so `berth status` right after a deploy or rollback already shows them.
    """
    stop(systemd, deployment)
    if (store().get(deployment) or {}).get("revision") != revision:  # same revision (a boot): keep counts
        roles = {} if rev is None else initial_roles(rev)
        store().put(deployment, {"name": deployment, "revision": revision, "started_at": now(),
                                 "roles": roles, "events": []})  # fmt: skip
    env = [f"{REVISION_ENV}={revision}"] + [f"{k}={os.environ[k]}" for k in PASSED_ENV if os.environ.get(k)]
    props = {
        "Description": f"berth liveness monitor of deployment {deployment} revision {revision}",
        "Type": "exec",
        "ExecStart": [[sys.executable, "-m", "berth", "monitor", deployment, "--revision", str(revision)]],
        "Restart": "on-failure",
        "RestartUSec": 1_000_000,
        "Environment": env,
        "LogExtraFields": [f"BERTH_DEPLOYMENT={deployment}".encode(), f"BERTH_REVISION={revision}".encode()],
        "SyslogIdentifier": f"berth-monitor-{deployment}",
        "Slice": "berth.slice",
        "CollectMode": "inactive-or-failed",
    }
    systemd.start_transient(unit_name(deployment), [to_dbus(k, v) for k, v in props.items()])


def stop(systemd: Systemd, deployment: str) -> bool:
    """Stop the monitor unit if it runs; True if it did."""
    unit = unit_name(deployment)
    live = live_state(systemd, unit)
    if live.running:
        systemd.stop(unit)
    if live.exists:
        try:
            systemd.reset_failed(unit)
        except NotFound:
            pass
    return live.running


def forget(deployment: str) -> None:
    store().delete(deployment)


# -- the monitor process ---------------------------------------------------------------------
@dataclass
class Watch:
    role: str
    container: str
    liveness: Liveness
    ports: list[dict[str, Any]]
    next_at: float = 0.0
    grace_until: float = 0.0
    invocation: str | None = None
    state: dict[str, Any] = field(default_factory=dict)


def watches_of(rev: dict[str, Any], roles: dict[str, Any]) -> list[Watch]:
    """A Watch per role of the revision that has a liveness check, its state kept in `roles`."""
    out = []
    for role in rev["content"]["roles"]:
        if role.get("liveness"):
            live = Liveness.from_json(role["liveness"])
            container = rev["containers"][role["role"]]
            out.append(Watch(role["role"], container, live, role["ports"], state=roles))
    return out


def initial_roles(rev: dict[str, Any]) -> dict[str, Any]:
    """The monitor's per-role state before its first probe."""
    roles: dict[str, Any] = {}
    for w in watches_of(rev, roles):
        _state(w)
    return roles


def _state(w: Watch) -> dict[str, Any]:
    s: dict[str, Any] = w.state.setdefault(
        w.role,
        {"container": w.container, "action": w.liveness.action, "threshold": w.liveness.failures,
         "probes": 0, "failures": 0, "failed_total": 0, "restarts": 0, "last": None,
         "last_failure": None, "last_restart": None},
    )  # fmt: skip
    return s


def _say(deployment: str, revision: int, text: str) -> None:
    print(f"{deployment}@{revision}: {text}", flush=True)


class Monitor:
    """The loop of `berth monitor`: probe, count, act, record."""

    def __init__(
        self,
        deployment: str,
        revision: int,
        systemd: Systemd | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name, self.revision = deployment, revision
        self.systemd = systemd or Systemd()
        self.clock, self.sleep = clock, sleep
        self.roles: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.written = 0.0

    def serving(self) -> dict[str, Any] | None:
        """This monitor's revision while it is the one that serves (else the monitor ends)."""
        record = records.get(self.name)
        if record is None or record.get("current") != self.revision:
            return None
        rev: dict[str, Any] | None = record["revisions"].get(str(self.revision))
        return rev

    def watches(self, rev: dict[str, Any]) -> list[Watch]:
        return watches_of(rev, self.roles)

    def run(self) -> int:
        rev = self.serving()
        if rev is None:
            _say(self.name, self.revision, "this revision does not serve: nothing to monitor")
            return 0
        watches = self.watches(rev)
        if not watches:
            _say(self.name, self.revision, "no role has a liveness check: nothing to monitor")
            return 0
        previous = store().get(self.name) or {}
        if previous.get("revision") == self.revision:  # a restart of the monitor keeps the counts
            self.roles.update(previous.get("roles") or {})
            self.events = list(previous.get("events") or [])
        for w in watches:
            _state(w)
        _say(self.name, self.revision, f"monitoring {', '.join(w.container for w in watches)}")
        self.write(force=True)
        changed = True  # the first round's results are written at once
        while True:
            now_ = self.clock()
            for w in watches:
                if now_ >= w.next_at:
                    changed |= self.check(w)
                    w.next_at = self.clock() + w.liveness.probe.interval
            self.write(force=changed)
            changed = False
            if self.serving() is None:
                _say(self.name, self.revision, "no longer the serving revision: monitor ends")
                return 0
            wait = min(w.next_at for w in watches) - self.clock()
            self.sleep(max(0.05, wait))

    def check(self, w: Watch) -> bool:
        """One probe of `w`; True when something worth writing happened."""
        s = _state(w)
        live = live_state(self.systemd, container_unit(w.container))
        if live.invocation_id != w.invocation:  # a new start (ours or systemd's): grace again
            w.invocation = live.invocation_id
            w.grace_until = self.clock() + w.liveness.probe.start_period
        if live.active_state == "active" and live.main_pid:
            result = probe(w.liveness.probe, w.container, live.main_pid)
        elif live.active_state == "activating":
            return False  # starting (or restarting under its Restart=): not a probe yet
        else:
            result = ProbeResult(False, f"container is not running ({live.active_state}/{live.sub_state})")
        result = ProbeResult(result.ok, " ".join(result.output.split())[:OUTPUT_MAX])  # one journal line
        s["probes"] += 1
        flipped = (s["last"] or {}).get("ok") is not result.ok  # the first result, or a change
        s["last"] = {"ok": result.ok, "output": result.output, "at": now()}
        if result.ok:
            if s["failures"]:
                _say(self.name, self.revision, f"{w.role}: liveness probe passes again ({result.output})")
            s["failures"] = 0
            return flipped
        if self.clock() < w.grace_until:
            return False
        s["failures"] += 1
        s["failed_total"] += 1
        s["last_failure"] = s["last"]
        count = f"{s['failures']}/{w.liveness.failures}"
        _say(
            self.name,
            self.revision,
            f"{w.role}: liveness probe of {w.container} failed ({count}): {result.output}",
        )
        threshold = w.liveness.failures
        # `restart` acts at the threshold (and resets the count); `none` records the crossing once
        # and keeps counting, so the status says how long it has been failing.
        if s["failures"] == threshold or (s["failures"] > threshold and w.liveness.action == "restart"):
            self.act(w, result)
        return True

    def act(self, w: Watch, result: ProbeResult) -> None:
        s = _state(w)
        event: dict[str, Any] = {"at": now(), "role": w.role, "container": w.container,
                                 "failures": s["failures"], "output": result.output,
                                 "action": w.liveness.action}  # fmt: skip
        if w.liveness.action == "none":
            event["result"] = "recorded"
            _say(self.name, self.revision, f"{w.role}: {s['failures']} failed liveness probes (action none)")
        else:
            why = f"{s['failures']} failed liveness probes"
            _say(self.name, self.revision, f"{w.role}: restarting {w.container} after {why}")
            try:
                self.restart(w)
            except BerthError as exc:
                event.update(result="failed", error=exc.message)
                _say(self.name, self.revision, f"{w.role}: restart of {w.container} failed: {exc.message}")
            else:
                event["result"] = "restarted"
                s["restarts"] += 1
                s["last_restart"] = event["at"]
                w.grace_until = self.clock() + w.liveness.probe.start_period
                w.invocation = live_state(self.systemd, container_unit(w.container)).invocation_id
            s["failures"] = 0
        self.events = [*self.events, event][-MAX_EVENTS:]

    def restart(self, w: Watch) -> None:
        """Restart the container and point its service ports at it again, under the deployment's
        lock: a deploy or rollback in flight (which stops this monitor) is never raced."""
        from berth.containers.manager import Containers
        from berth.deployments import traffic
        from berth.network.ports import PortMapping

        with records.locked(self.name):
            if self.serving() is None:
                return
            containers = Containers(self.systemd)
            containers.restart(w.container)
            if w.ports:
                traffic.move_all([(PortMapping.from_json(p), w.container) for p in w.ports])

    def write(self, force: bool = False) -> None:
        if not force and self.clock() - self.written < HEARTBEAT:
            return
        self.written = self.clock()
        doc = store().get(self.name) or {}
        store().put(self.name, {**doc, "name": self.name, "revision": self.revision, "pid": os.getpid(),
                                "updated_at": now(), "roles": self.roles, "events": self.events})  # fmt: skip


def view(systemd: Systemd, deployment: str) -> dict[str, Any] | None:
    """What `berth status` shows of the monitor: its unit, the revision it watches, the results."""
    doc = store().get(deployment)
    revision = watching(systemd, deployment)
    if doc is None and revision is None:
        return None
    doc = doc or {}
    return {
        "unit": unit_name(deployment),
        "running": revision is not None,
        "revision": revision if revision is not None else doc.get("revision"),
        "updated_at": doc.get("updated_at"),
        "roles": doc.get("roles", {}),
        "events": doc.get("events", []),
    }
