"""Health checks of a revision's containers: what to probe and how often, canonicalised.

A check comes from the deployment spec (`exec`, `tcp`, `http`), from the image's HEALTHCHECK
(the Docker config `Healthcheck` that the container's record keeps as `image_config`), or from
the app itself (`notify`: its sd_notify READY=1, relayed by the shim; the unit is active only
after it). Spec timings override the image's. Without any probe the gate only asks that every
container keeps running for `min_healthy` seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from berth.errors import InvalidInput

_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m)?$")
KINDS = ("exec", "tcp", "http", "running", "notify")
PROBES = ("exec", "tcp", "http", "image", "notify")
NS = 1_000_000_000


@dataclass(frozen=True)
class Health:
    """One role's gate. Times are seconds; `retries` consecutive failures (after the start
    period) fail the gate; `min_healthy` is how long a container must stay healthy after its
    first passing probe; `deadline` bounds the whole gate."""

    kind: str = "running"
    command: tuple[str, ...] = ()
    port: int = 0
    host: str = "127.0.0.1"
    path: str = "/"
    status: tuple[int, int] = (200, 399)
    from_image: bool = False
    start_period: float = 0.0
    interval: float = 1.0
    timeout: float = 2.0
    retries: int = 3
    min_healthy: float = 0.0
    deadline: float = 60.0
    explicit: tuple[str, ...] = ()  # timings the spec set: they win over the image's HEALTHCHECK

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "from_image": self.from_image,
            "start_period": self.start_period,
            "interval": self.interval,
            "timeout": self.timeout,
            "retries": self.retries,
            "min_healthy": self.min_healthy,
            "deadline": self.deadline,
            "explicit": list(self.explicit),
        }
        if self.kind == "exec":
            out["command"] = list(self.command)
        if self.kind in ("tcp", "http"):
            out.update(port=self.port, host=self.host)
        if self.kind == "http":
            out.update(path=self.path, status=list(self.status))
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Health:
        return cls(
            kind=doc["kind"],
            command=tuple(doc.get("command") or ()),
            port=int(doc.get("port", 0)),
            host=doc.get("host", "127.0.0.1"),
            path=doc.get("path", "/"),
            status=(int(doc.get("status", [200, 399])[0]), int(doc.get("status", [200, 399])[1])),
            from_image=bool(doc.get("from_image")),
            start_period=float(doc["start_period"]),
            interval=float(doc["interval"]),
            timeout=float(doc["timeout"]),
            retries=int(doc["retries"]),
            min_healthy=float(doc["min_healthy"]),
            deadline=float(doc["deadline"]),
            explicit=tuple(doc.get("explicit") or ()),
        )


def seconds(value: Any, what: str) -> float:
    """`1.5`, `"1.5s"`, `"200ms"` or `"2m"` in seconds."""
    if isinstance(value, bool):
        raise InvalidInput(f"{what}: {value!r} is not a duration")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        match = _DURATION.match(str(value).strip())
        if not match:
            raise InvalidInput(f"{what}: {value!r} is not a duration (like 2, 1.5s, 200ms, 1m)")
        number = float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match[2]]
    if number < 0 or number > 86400:
        raise InvalidInput(f"{what}: {value!r} is out of range (0 to 1 day)")
    return round(number, 3)


def _port(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidInput(f"{what}: {value!r} is not a port number")
    return value


def _status(value: Any, what: str) -> tuple[int, int]:
    """`200`, `"200-399"` or `[200, 399]`."""
    if isinstance(value, int) and not isinstance(value, bool):
        low = high = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{3}(-[0-9]{3})?", value):
        first, _, rest = value.partition("-")
        low, high = int(first), int(rest or first)
    elif isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        low, high = value
    else:
        raise InvalidInput(f"{what}: {value!r} is not a status or a range (200-399)")
    if not 100 <= int(low) <= int(high) <= 599:
        raise InvalidInput(f"{what}: {value!r} is not a range of HTTP statuses")
    return int(low), int(high)


TIMINGS = ("start_period", "interval", "timeout", "retries", "min_healthy", "deadline")


def parse_health(doc: Any, what: str) -> Health:
    """A role's `health` field, canonical. Exactly one of exec, tcp, http, image or notify (or none)."""
    if doc is None:
        return Health(min_healthy=1.0)
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what}: expected an object")
    known = {*PROBES, *TIMINGS}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise InvalidInput(f"{what}: unknown field {unknown[0]!r}")
    probes = [k for k in PROBES if doc.get(k) not in (None, False)]
    if len(probes) > 1:
        raise InvalidInput(
            f"{what}: give one of exec, tcp, http, image or notify, not {' and '.join(probes)}"
        )
    if "notify" in probes and doc["notify"] is not True:
        raise InvalidInput(f"{what}.notify: true (the app sends READY=1 itself), or leave it out")
    health = Health()
    kind = probes[0] if probes else "running"
    if kind == "exec":
        command = doc["exec"]
        if isinstance(command, str):
            command = ["/bin/sh", "-c", command]
        if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
            raise InvalidInput(f"{what}.exec: a command (a list of strings, or a shell string)")
        health = replace(health, kind="exec", command=tuple(command))
    elif kind in ("tcp", "http"):
        probe = doc[kind]
        if isinstance(probe, int):
            probe = {"port": probe}
        if not isinstance(probe, dict) or "port" not in probe:
            raise InvalidInput(f"{what}.{kind}: needs a port")
        health = replace(health, kind=kind, port=_port(probe["port"], f"{what}.{kind}.port"))
        if probe.get("host"):
            health = replace(health, host=str(probe["host"]))
        if kind == "http":
            path = str(probe.get("path", "/"))
            if not path.startswith("/") or any(c in path for c in " \r\n"):
                raise InvalidInput(f"{what}.http.path: {path!r} is not a URL path")
            health = replace(health, path=path, status=_status(probe.get("status", "200-399"), what))
    elif kind == "image":
        health = replace(health, kind="running", from_image=True)  # resolved against the image later
    elif kind == "notify":
        health = replace(health, kind="notify")
    else:
        health = replace(health, min_healthy=1.0)
    changes: dict[str, Any] = {}
    for key in TIMINGS:
        if doc.get(key) is None:
            continue
        if key == "retries":
            value = doc[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
                raise InvalidInput(f"{what}.retries: {value!r} is not a number from 1 to 1000")
            changes[key] = value
        else:
            changes[key] = seconds(doc[key], f"{what}.{key}")
    health = replace(health, **changes, explicit=tuple(sorted(changes)))
    if health.timeout <= 0 or health.interval <= 0:
        raise InvalidInput(f"{what}: interval and timeout must be greater than 0")
    return health


def from_image(health: Health, image_config: dict[str, Any]) -> Health:
    """The image's HEALTHCHECK as a probe, with the spec's explicit timings on top.

    Docker stores durations in nanoseconds and the test as ["CMD", ...], ["CMD-SHELL", "..."]
    or ["NONE"]. An image without one (or with NONE) leaves the gate at "keeps running".
    """
    check = image_config.get("Healthcheck") or {}
    test = list(check.get("Test") or [])
    if not test or test[0] == "NONE":
        return replace(health, kind="running", min_healthy=max(health.min_healthy, 1.0))
    if test[0] == "CMD-SHELL":
        command: tuple[str, ...] = ("/bin/sh", "-c", " ".join(test[1:]))
    elif test[0] == "CMD":
        command = tuple(test[1:])
    else:  # a bare list is a CMD
        command = tuple(test)
    image_timings = {
        "interval": check.get("Interval"),
        "timeout": check.get("Timeout"),
        "start_period": check.get("StartPeriod"),
    }
    changes: dict[str, Any] = {"kind": "exec", "command": command}
    for key, ns in image_timings.items():
        if ns and key not in health.explicit:
            changes[key] = round(int(ns) / NS, 3)
    if check.get("Retries") and "retries" not in health.explicit:
        changes["retries"] = int(check["Retries"])
    return replace(health, **changes)
