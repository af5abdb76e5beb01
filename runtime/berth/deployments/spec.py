"""A deployment spec: a named app's roles (containers), their service ports and health checks.

    {"name": "shop", "strategy": "start-first", "keep": 5, "drain": 1, "slice": "shop",
     "containers": [{"role": "web", "image": "shop:2", "ports": ["8080:80"],
                     "health": {"http": {"port": 80, "path": "/"}, "interval": "200ms"},
                     ...any other container spec field...}]}

A role is a container spec without a name: each revision makes its own container
`<name>-<revision>-<role>`. Service `ports` are not published by the containers themselves
(two revisions run side by side during a deploy, so they would clash): the deployment holds them
and moves them with the network's traffic switch. The settings (strategy, keep, drain) belong to
the deployment; only the roles make up a revision's content.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from berth.containers.spec import ContainerSpec, parse_spec
from berth.deployments.health import Health, parse_health, seconds
from berth.deployments.liveness import Liveness, parse_liveness
from berth.errors import InvalidInput
from berth.network.ports import PortMapping, parse_ports

# <name>-<revision>-<role> must be a valid container name (63 characters at most).
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,29}$")
_ROLE = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")
MAX_REVISION = 999_999_999
STRATEGIES = ("start-first", "stop-first")
DEFAULT_KEEP = 5
DEFAULT_DRAIN = 1.0
SETTINGS = ("name", "strategy", "keep", "drain", "slice", "containers")


@dataclass(frozen=True)
class Role:
    """One container of the app: its canonical container spec (name is a placeholder), its
    service ports, its health gate and its liveness check (kept running after the deploy)."""

    role: str
    spec: ContainerSpec
    ports: tuple[PortMapping, ...]
    health: Health
    liveness: Liveness | None = None

    def to_json(self) -> dict[str, Any]:
        doc = self.spec.to_json()
        del doc["name"]
        out = {
            "role": self.role,
            "container": doc,
            "ports": [p.to_json() for p in self.ports],
            "health": self.health.to_json(),
        }
        if self.liveness is not None:  # only when set: content hashes of older revisions stay put
            out["liveness"] = self.liveness.to_json()
        return out


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    roles: tuple[Role, ...]
    strategy: str = "start-first"
    keep: int = DEFAULT_KEEP
    drain: float = DEFAULT_DRAIN

    def settings(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "keep": self.keep, "drain": self.drain}


def validate_deployment_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"invalid deployment name {name!r}: 1-30 lowercase letters, digits or '-', "
            "starting with a letter or digit"
        )
    return name


def container_name(deployment: str, revision: int, role: str) -> str:
    return f"{deployment}-{revision}-{role}"


def _role(name: str, doc: Any, i: int, slice_: str | None) -> Role:
    what = f"spec field containers.{i}"
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what}: expected an object")
    role = doc.get("role")
    if not isinstance(role, str) or not _ROLE.match(role):
        raise InvalidInput(f"{what}.role: {role!r} is not 1-20 lowercase letters, digits or '-'")
    if "name" in doc:
        raise InvalidInput(f"{what}: a role has no name; its containers are named <name>-<revision>-<role>")
    body = {k: v for k, v in doc.items() if k not in ("role", "ports", "health", "liveness")}
    ports = parse_ports(list(doc.get("ports") or []))
    if ports and body.get("network") in (None, "none") and not body.get("networks"):
        body["network"] = "bridge"  # service ports need an address to forward to
    if body.get("network") == "host" and ports:
        raise InvalidInput(f"{what}.ports: a container on the host network cannot have switched ports")
    body.setdefault("hostname", f"{name}-{role}")  # the same in every revision
    body.setdefault("restart", "always")
    if slice_ and not body.get("slice"):
        body["slice"] = slice_
    health = parse_health(doc.get("health"), f"{what}.health")
    if health.kind == "notify":  # readiness is the app's READY=1: the start waits for it
        if body.get("sdnotify", "container") != "container":
            raise InvalidInput(f"{what}.health.notify needs sdnotify: container (or no sdnotify)")
        body["sdnotify"] = "container"
        body.setdefault("start_timeout", max(1, math.ceil(health.deadline)))
    spec = parse_spec({**body, "name": container_name(name, 0, role)})
    liveness = parse_liveness(doc.get("liveness"), health, f"{what}.liveness")
    return Role(role, spec, ports, health, liveness)


def parse_deployment(doc: Any, name: str | None = None) -> DeploymentSpec:
    """Validate a deployment document and return its canonical form (images not yet resolved)."""
    if not isinstance(doc, dict):
        raise InvalidInput(f"deployment spec must be a JSON object, not {type(doc).__name__}")
    unknown = sorted(set(doc) - set(SETTINGS))
    if unknown:
        raise InvalidInput(f"deployment spec: unknown field {unknown[0]!r}")
    dep = validate_deployment_name(doc.get("name") or name)
    if name is not None and doc.get("name") not in (None, name):
        raise InvalidInput(f"deployment spec names {doc['name']!r}, not {name!r}")
    strategy = doc.get("strategy", "start-first")
    if strategy not in STRATEGIES:
        raise InvalidInput(f"spec field strategy: {strategy!r} is not start-first or stop-first")
    keep = doc.get("keep", DEFAULT_KEEP)
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= 100:
        raise InvalidInput(f"spec field keep: {keep!r} is not a number from 1 to 100")
    drain = seconds(doc.get("drain", DEFAULT_DRAIN), "spec field drain")
    items = doc.get("containers")
    if not isinstance(items, list) or not items:
        raise InvalidInput("spec field containers: a list of at least one role")
    roles = [_role(dep, item, i, doc.get("slice")) for i, item in enumerate(items)]
    names = [r.role for r in roles]
    if len(set(names)) != len(names):
        raise InvalidInput(f"spec field containers: roles {names} are not unique")
    held: list[tuple[PortMapping, str]] = []
    for r in roles:
        for port in r.ports:
            clash = next((role for p, role in held if p.clashes(port)), None)
            if clash is not None:
                raise InvalidInput(f"port {port} of role {r.role} clashes with one of role {clash}")
            held.append((port, r.role))
    return DeploymentSpec(dep, tuple(sorted(roles, key=lambda r: r.role)), strategy, keep, drain)
