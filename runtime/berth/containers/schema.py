"""JSON Schema of a container spec: the shape; spec.py checks the meaning."""

from __future__ import annotations

from typing import Any

from berth.units.devices import DEVICE_LIMITS
from berth.units.schema import DEVICE_MAP

_STR_LIST = {"type": "array", "items": {"type": "string"}}
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_SIZE = {"type": ["string", "integer"]}

CONTAINER_SPEC_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "berth container spec",
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "image": {"type": "string", "minLength": 1},
        "rootfs": {"type": "string", "minLength": 1},
        "layers": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "command": _STR_LIST,
        "entrypoint": _STR_LIST,
        "env": _STR_MAP,
        "workdir": {"type": "string"},
        "user": {"type": "string"},
        "hostname": {"type": "string"},
        "mounts": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type", "target"],
                "properties": {
                    "type": {"enum": ["bind", "tmpfs", "volume"]},
                    "source": {"type": "string"},
                    "target": {"type": "string"},
                    "read_only": {"type": "boolean"},
                    "size": _SIZE,
                    "mode": {"type": "string", "pattern": "^[0-7]{3,4}$"},
                    "idmap": {"type": "boolean"},
                    "nocopy": {"type": "boolean"},
                },
            },
        },
        "secrets": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "source"],
                "properties": {"name": {"type": "string"}, "source": {"type": "string"}},
            },
        },
        "read_only": {"type": "boolean"},
        "restart": {"type": "string"},
        "stop_signal": {"type": ["string", "integer"]},
        "stop_timeout": {"type": "integer", "minimum": 0, "maximum": 86400},
        "sdnotify": {"enum": ["runtime", "container"]},
        "start_timeout": {"type": "integer", "minimum": 0, "maximum": 86400},
        "cap_add": _STR_LIST,
        "cap_drop": _STR_LIST,
        "privileged": {"type": "boolean"},
        "no_new_privileges": {"type": "boolean"},
        "seccomp": {"enum": ["default", "unconfined"]},
        "labels": _STR_MAP,
        "slice": {"type": ["string", "null"]},
        "network": {"type": "string", "minLength": 1},
        "networks": _STR_LIST,
        "ports": {"type": "array", "items": {"type": ["string", "object"]}},
        "userns": {"type": ["string", "object"]},  # host, auto or {uid, gid, size}: see userns.py
        "resources": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "memory_max": _SIZE,
                "memory_high": _SIZE,
                "memory_swap_max": _SIZE,
                "cpu_quota": {"type": ["string", "integer", "number"]},
                "cpu_weight": {"type": "integer", "minimum": 1, "maximum": 10000},
                "io_weight": {"type": "integer", "minimum": 1, "maximum": 10000},
                **dict.fromkeys(DEVICE_LIMITS, DEVICE_MAP),
                "tasks_max": {"type": ["string", "integer"]},
                "cpus": {"type": "string"},
                "nice": {"type": "integer", "minimum": -20, "maximum": 19},
            },
        },
    },
}
