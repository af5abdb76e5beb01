"""The shim's JSON (berth.shim.jsonlite) agrees with the json module on what the shim reads and writes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from berth.shim import jsonlite

SAMPLES: list[Any] = [
    None,
    True,
    False,
    0,
    -17,
    2**64 + 1,
    1.5,
    -0.25,
    1e300,
    "",
    "plain",
    'quote " backslash \\ slash /',
    "controls \n\r\t\b\f \x00 \x1f \x7f",
    "non-ASCII: é ß ☃ 𝄞",
    [],
    {},
    [1, [2, [3, []]], {"a": {"b": None}}],
    {"name": "c-1", "process": {"args": ["sh", "-c", "echo 'hi' \"there\""], "env": ["A=1"], "user": "0"}},
    {"seccomp": {"denied": list(range(300)), "arch": "x86_64"}, "mounts": [{"read_only": False}]},
]


@pytest.mark.parametrize("value", SAMPLES)
def test_dumps_is_json_dumps(value: Any) -> None:
    assert jsonlite.dumps(value) == json.dumps(value)


@pytest.mark.parametrize("value", SAMPLES)
@pytest.mark.parametrize("indent", [None, 2])
def test_loads_reads_what_json_writes(value: Any, indent: int | None) -> None:
    text = json.dumps(value, indent=indent, sort_keys=True)
    assert jsonlite.loads(text) == json.loads(text)
    assert jsonlite.loads(text.encode()) == json.loads(text)
    raw = json.dumps(value, ensure_ascii=False)
    assert jsonlite.loads(raw) == json.loads(raw)


def test_tuples_and_special_floats() -> None:
    assert jsonlite.dumps((1, "a")) == json.dumps((1, "a"))
    assert jsonlite.dumps([math.inf, -math.inf]) == json.dumps([math.inf, -math.inf])
    assert jsonlite.dumps(math.nan) == "NaN"
    assert math.isnan(jsonlite.loads("NaN"))
    assert jsonlite.loads("[-Infinity, Infinity]") == [-math.inf, math.inf]


def test_lone_surrogate_escape_is_kept() -> None:
    assert jsonlite.loads('"\\ud800x"') == json.loads('"\\ud800x"')


BAD = ["", "[1,", '{"a" 1}', '"open', "[1] 2", "tru", '"\\x"', '"\\u12"', "{1: 2}"]


@pytest.mark.parametrize("text", BAD)
def test_bad_json_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        jsonlite.loads(text)


def test_non_string_keys_are_refused() -> None:
    with pytest.raises(TypeError):
        jsonlite.dumps({1: 2})
    with pytest.raises(TypeError):
        jsonlite.dumps(object())
