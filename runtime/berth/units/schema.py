"""The JSON Schema of a unit spec: the shape of the input; `spec.py` checks the values."""

from __future__ import annotations

from typing import Any

from berth.units.devices import DEVICE_LIMITS

_SIZE: dict[str, Any] = {"type": ["integer", "string", "null"]}
_WEIGHT: dict[str, Any] = {"type": ["integer", "null"], "minimum": 1, "maximum": 10000}
_OPT_STRING: dict[str, Any] = {"type": ["string", "null"], "minLength": 1}
# resources.io_*_max: device path -> limit (checked and resolved by berth.units.devices)
DEVICE_MAP: dict[str, Any] = {"type": "object", "additionalProperties": {"type": ["integer", "string"]}}

UNIT_SPEC_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "berth unit spec",
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "command": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "state": {"enum": ["started", "stopped", "absent"]},
        "description": {"type": "string"},
        "slice": _OPT_STRING,
        "environment": {"type": "object", "additionalProperties": {"type": "string"}},
        "working_directory": _OPT_STRING,
        "user": _OPT_STRING,
        "resources": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "memory_max": _SIZE,
                "memory_high": _SIZE,
                "memory_swap_max": _SIZE,
                "cpu_quota": {"type": ["string", "null"]},
                "cpu_weight": _WEIGHT,
                "tasks_max": {"type": ["integer", "string", "null"]},
                "io_weight": _WEIGHT,
                **dict.fromkeys(DEVICE_LIMITS, DEVICE_MAP),
            },
        },
        "properties": {"type": "object"},
    },
}
