"""A role's liveness check: the probe the monitor keeps running after a deploy, and what it does.

    "liveness": {"http": {"port": 80}, "interval": "5s", "timeout": "1s", "failures": 3,
                 "start_period": "2s", "action": "restart"}

The probe is one of exec, tcp, http or image (as a health check); without one, the role's own
health probe is reused. `failures` failed probes in a row trigger the `action`: `restart` (the
container is restarted and its service ports pointed at it again) or `none` (recorded only).
`start_period` is the grace after every (re)start of the container, when failures do not count.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from berth.deployments.health import Health, parse_health, seconds
from berth.errors import InvalidInput

ACTIONS = ("restart", "none")
PROBES = ("exec", "tcp", "http", "image")
FIELDS = (*PROBES, "interval", "timeout", "start_period", "failures", "action")
DEFAULT_INTERVAL = 10.0
DEFAULT_FAILURES = 3


@dataclass(frozen=True)
class Liveness:
    probe: Health
    failures: int = DEFAULT_FAILURES
    action: str = "restart"

    def to_json(self) -> dict[str, Any]:
        return {"probe": self.probe.to_json(), "failures": self.failures, "action": self.action}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Liveness:
        return cls(Health.from_json(doc["probe"]), int(doc["failures"]), str(doc["action"]))


def parse_liveness(doc: Any, health: Health, what: str) -> Liveness | None:
    """A role's `liveness` field, canonical (None: no monitor for this role)."""
    if doc is None or doc is False:
        return None
    if doc is True:
        doc = {}
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what}: expected an object (or true: the health probe, default settings)")
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"{what}: unknown field {unknown[0]!r}")
    action = doc.get("action", "restart")
    if action not in ACTIONS:
        raise InvalidInput(f"{what}.action: {action!r} is not restart or none")
    failures = doc.get("failures", DEFAULT_FAILURES)
    if isinstance(failures, bool) or not isinstance(failures, int) or not 1 <= failures <= 1000:
        raise InvalidInput(f"{what}.failures: {failures!r} is not a number from 1 to 1000")
    own = {k: doc[k] for k in PROBES if doc.get(k) not in (None, False)}
    if own:
        probe = parse_health(own, what)
    elif health.kind in ("exec", "tcp", "http") or health.from_image:
        probe = health
    else:
        raise InvalidInput(
            f"{what}: give a probe (exec, tcp, http or image): the role's health check "
            f"({'none' if health.kind == 'running' else health.kind}) has none to reuse"
        )
    interval = seconds(doc.get("interval", DEFAULT_INTERVAL), f"{what}.interval")
    timeout = seconds(doc.get("timeout", probe.timeout), f"{what}.timeout")
    start_period = seconds(doc.get("start_period", 0), f"{what}.start_period")
    if interval <= 0 or timeout <= 0:
        raise InvalidInput(f"{what}: interval and timeout must be greater than 0")
    explicit = tuple(sorted({"interval", "start_period", *(k for k in ("timeout",) if k in doc)}))
    probe = replace(probe, interval=interval, timeout=timeout, start_period=start_period, retries=failures,
                    min_healthy=0.0, deadline=0.0, explicit=explicit)  # fmt: skip
    return Liveness(probe, failures, action)
