"""A unit spec: validated from JSON, canonicalised, hashed, and turned into systemd properties.

Canonical means: defaults filled in, sizes in bytes, names with their suffix, maps sorted. Two
specs that mean the same thing ("64M" and 67108864) therefore have the same `spec_hash`, which is
the sha256 of the canonical JSON *without* `state`: the hash names what runs, not whether it
should run, so stopping and starting again is not mistaken for a change of definition.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from berth.errors import InvalidInput
from berth.systemd.names import service_name, slice_name
from berth.systemd.properties import Property, normalize, to_dbus
from berth.systemd.sizes import (
    INFINITY,
    parse_count,
    parse_percent,
    parse_size,
    percent_to_usec_per_sec,
)
from berth.units.devices import DEVICE_LIMITS, device_limit_value, parse_device_limits
from berth.units.schema import UNIT_SPEC_SCHEMA

STATES = ("started", "stopped", "absent")
# Set in every unit berth starts: it marks the unit as berth's and says which definition runs,
# so `observe` can tell a changed spec even when the record was lost.
MARKER_ENV = "BERTH_SPEC_HASH"
DEFAULT_TYPE = "exec"  # with Type=exec a failed exec() fails the start job itself

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,255}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _weight(value: Any, field: str) -> int:
    return int(value)  # the schema has checked the type and the 1..10000 range


# resources.<field> -> (systemd property, parser into the canonical value)
RESOURCES: Mapping[str, tuple[str, Callable[[Any, str], Any]]] = {
    "memory_max": ("MemoryMax", parse_size),
    "memory_high": ("MemoryHigh", parse_size),
    "memory_swap_max": ("MemorySwapMax", parse_size),
    "cpu_quota": ("CPUQuotaPerSecUSec", parse_percent),
    "cpu_weight": ("CPUWeight", _weight),
    "tasks_max": ("TasksMax", parse_count),
    "io_weight": ("IOWeight", _weight),
    **{field: (prop, parse_device_limits) for field, prop in DEVICE_LIMITS.items()},
}
# spec field -> the property it sets
FIELD_PROPERTIES = {
    "command": "ExecStart",
    "environment": "Environment",
    "slice": "Slice",
    "working_directory": "WorkingDirectory",
    "user": "User",
    "description": "Description",
}


@dataclass(frozen=True)
class UnitSpec:
    """A canonical, valid spec. Build with `parse_spec`; `to_json` gives it back."""

    name: str
    state: str = "started"
    command: tuple[str, ...] = ()
    description: str = ""
    slice: str | None = None
    environment: tuple[tuple[str, str], ...] = ()
    working_directory: str | None = None
    user: str | None = None
    resources: tuple[tuple[str, Any], ...] = ()
    properties: tuple[tuple[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The canonical spec: `parse_spec(spec.to_json()) == spec`."""
        doc: dict[str, Any] = {
            "name": self.name,
            "state": self.state,
            "description": self.description,
            "slice": self.slice,
            "environment": dict(self.environment),
            "working_directory": self.working_directory,
            "user": self.user,
            "resources": dict(self.resources),
            "properties": dict(self.properties),
        }
        if self.command:
            doc["command"] = list(self.command)
        return doc

    @cached_property
    def spec_hash(self) -> str:
        definition = self.to_json()
        del definition["state"]
        canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def with_state(self, state: str) -> UnitSpec:
        return replace(self, state=state)

    def systemd_properties(self) -> list[Property]:
        """What StartTransientUnit gets: typed properties, the berth marker included."""
        env = [f"{k}={v}" for k, v in self.environment] + [f"{MARKER_ENV}={self.spec_hash}"]
        props: dict[str, Any] = {
            "Description": self.description,
            "Type": DEFAULT_TYPE,
            "Environment": env,
        }
        if self.command:
            props["ExecStart"] = [list(self.command)]
        for key, prop in (("slice", "Slice"), ("working_directory", "WorkingDirectory"), ("user", "User")):
            if getattr(self, key) is not None:
                props[prop] = getattr(self, key)
        for field, value in self.resources:
            props[RESOURCES[field][0]] = resource_value(field, value)
        props.update(self.properties)
        return [to_dbus(name, value) for name, value in props.items()]


def resource_value(field: str, value: Any) -> Any:
    """A canonical resources.<field> as its property's value (before `to_dbus`)."""
    if field == "cpu_quota" and value != INFINITY:
        return percent_to_usec_per_sec(value)
    if field in DEVICE_LIMITS:
        return device_limit_value(value)
    return value


def _validate_schema(doc: Any) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(UNIT_SPEC_SCHEMA).iter_errors(doc))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        prefix = f"spec field {where}" if where else "spec"
        raise InvalidInput(f"{prefix}: {error.message}", field=where or None)


def _environment(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    for key, value in env.items():
        if not _ENV_NAME.match(key):
            raise InvalidInput(f"spec field environment: {key!r} is not a variable name")
        if key == MARKER_ENV:
            raise InvalidInput(f"spec field environment: {MARKER_ENV} is reserved for berth")
        if _CONTROL.search(value):
            raise InvalidInput(f"spec field environment.{key}: control characters are not allowed")
    return tuple(sorted(env.items()))


def _command(argv: list[str]) -> tuple[str, ...]:
    exe = argv[0]
    if not exe or ("/" in exe and not exe.startswith("/")):
        raise InvalidInput(f"spec field command: {exe!r} must be an absolute path or a bare program name")
    if any("\0" in a for a in argv):
        raise InvalidInput("spec field command: arguments must not contain NUL characters")
    return tuple(argv)


def parse_spec(doc: Any) -> UnitSpec:
    """Validate a spec document (parsed JSON) and return its canonical UnitSpec."""
    if not isinstance(doc, dict):
        raise InvalidInput(f"spec must be a JSON object, not {type(doc).__name__}")
    _validate_schema(doc)
    name = service_name(doc["name"], "spec field name")
    state = doc.get("state", "started")
    if state == "started" and not doc.get("command"):
        raise InvalidInput("spec field command is required when state is 'started'")
    workdir = doc.get("working_directory")
    if workdir is not None and not (workdir.startswith("/") or workdir == "~"):
        raise InvalidInput(f"spec field working_directory: {workdir!r} is not an absolute path")
    user = doc.get("user")
    if user is not None and not _USER.match(user):
        raise InvalidInput(f"spec field user: {user!r} is not a user name or UID")
    description = doc.get("description") or f"berth unit {name}"
    if _CONTROL.search(description) or "\n" in description:
        raise InvalidInput("spec field description: control characters are not allowed")

    resources = {}
    for field, value in (doc.get("resources") or {}).items():
        if value is not None:
            resources[field] = RESOURCES[field][1](value, f"spec field resources.{field}")

    # One way to say each thing: a property that a spec field sets is never a raw property.
    reserved = {prop: field for field, prop in FIELD_PROPERTIES.items()}
    reserved |= {RESOURCES[f][0]: f"resources.{f}" for f in RESOURCES}
    properties = {}
    for prop, value in (doc.get("properties") or {}).items():
        if prop in reserved:
            raise InvalidInput(f"spec field properties.{prop} conflicts with {reserved[prop]}; set it there")
        try:
            properties[prop] = normalize(prop, value)
        except InvalidInput as exc:
            raise InvalidInput(f"spec field properties.{prop}: {exc.message}", field=prop) from None

    return UnitSpec(
        name=name,
        state=state,
        command=_command(doc["command"]) if doc.get("command") else (),
        description=description,
        slice=slice_name(doc["slice"], "spec field slice") if doc.get("slice") else None,
        environment=_environment(doc.get("environment") or {}),
        working_directory=workdir,
        user=user,
        resources=tuple(sorted(resources.items())),
        properties=tuple(sorted(properties.items())),
    )
