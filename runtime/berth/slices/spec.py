"""A slice spec: a group name under berth.slice and its resources, canonical and hashed."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from berth.containers.spec import parse_resources
from berth.errors import InvalidInput

# Group names nest with '-': "web-api" is berth-web-api.slice inside berth-web.slice.
_GROUP = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}(-[a-z0-9][a-z0-9_]{0,31}){0,3}$")
STATES = ("present", "absent")
SLICE_ONLY = {"mems"}


@dataclass(frozen=True)
class SliceSpec:
    group: str
    resources: tuple[tuple[str, Any], ...] = ()

    @property
    def unit(self) -> str:
        return f"berth-{self.group}.slice"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.group, "unit": self.unit, "resources": dict(self.resources)}

    @property
    def spec_hash(self) -> str:
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def validate_group(name: str) -> str:
    if not isinstance(name, str) or not _GROUP.match(name):
        raise InvalidInput(
            f"invalid slice name {name!r}: lowercase letters, digits and '_', up to 4 levels joined by '-'"
        )
    return name


def parse_slice(doc: Any) -> tuple[SliceSpec, str]:
    if not isinstance(doc, dict):
        raise InvalidInput("a slice spec is a JSON object")
    unknown = set(doc) - {"name", "resources", "state"}
    if unknown:
        raise InvalidInput(f"slice spec: unknown field(s) {', '.join(sorted(unknown))}")
    group = validate_group(doc.get("name", ""))
    state = doc.get("state", "present")
    if state not in STATES:
        raise InvalidInput(f"slice state {state!r} is not present or absent")
    raw = dict(doc.get("resources") or {})
    if not isinstance(raw, dict):
        raise InvalidInput("slice spec field resources must be an object")
    mems = raw.pop("mems", None)
    resources = parse_resources(raw)
    if "nice" in resources:
        raise InvalidInput("spec field resources.nice: a slice has no processes of its own to renice")
    if mems is not None:
        resources["mems"] = parse_resources({"cpus": mems})["cpus"]
    return SliceSpec(group, tuple(sorted(resources.items()))), state
