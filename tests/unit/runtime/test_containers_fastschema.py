"""The schema fast path never accepts what jsonschema rejects, and accepts ordinary specs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from berth.containers.fastschema import surely_valid
from berth.containers.schema import CONTAINER_SPEC_SCHEMA

VALIDATOR = Draft202012Validator(CONTAINER_SPEC_SCHEMA)

VALID: list[dict[str, Any]] = [
    {"name": "web"},
    {"name": "web", "rootfs": "/r", "command": ["true"], "env": {"A": "b"}, "stop_timeout": 0},
    {
        "name": "x",
        "layers": ["/a", "/b"],
        "mounts": [{"type": "tmpfs", "target": "/t", "size": "64M", "mode": "1777"}],
        "secrets": [{"name": "s", "source": "/s"}],
        "resources": {"memory_max": "64M", "cpu_quota": 12.5, "nice": -20, "cpu_weight": 10000},
        "slice": None,
        "ports": ["8080:80", {"host": 1}],
        "stop_signal": 15,
        "read_only": True,
    },
]
INVALID: list[Any] = [
    {},
    [],
    {"name": 1},
    {"name": "x", "bogus": 1},
    {"name": "x", "image": ""},
    {"name": "x", "layers": []},
    {"name": "x", "env": {"A": 1}},
    {"name": "x", "labels": {"A": None}},
    {"name": "x", "command": "true"},
    {"name": "x", "command": [1]},
    {"name": "x", "stop_timeout": -1},
    {"name": "x", "stop_timeout": 86401},
    {"name": "x", "stop_timeout": True},
    {"name": "x", "read_only": 1},
    {"name": "x", "mounts": [{"type": "nfs", "target": "/t"}]},
    {"name": "x", "mounts": [{"type": "bind"}]},
    {"name": "x", "mounts": [{"type": "tmpfs", "target": "/t", "mode": "17777"}]},
    {"name": "x", "mounts": [{"type": "tmpfs", "target": "/t", "extra": 1}]},
    {"name": "x", "resources": {"cpu_weight": 0}},
    {"name": "x", "resources": {"nice": 20}},
    {"name": "x", "resources": {"potatoes": 12}},
    {"name": "x", "resources": {"memory_max": 1.5}},
    {"name": "x", "slice": 3},
    {"name": "x", "ports": [3]},
]


@pytest.mark.parametrize("doc", VALID)
def test_ordinary_specs_take_the_fast_path(doc: dict[str, Any]) -> None:
    assert VALIDATOR.is_valid(doc)
    assert surely_valid(CONTAINER_SPEC_SCHEMA, doc)


@pytest.mark.parametrize("doc", INVALID)
def test_invalid_specs_fall_back_to_jsonschema(doc: Any) -> None:
    assert not VALIDATOR.is_valid(doc)
    assert not surely_valid(CONTAINER_SPEC_SCHEMA, doc)


KEYS = [*sorted(CONTAINER_SPEC_SCHEMA["properties"]), "bogus"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-30, 90000), st.floats(allow_nan=False), st.text(max_size=5)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["type", "target", "source", "mode", "size", "A", "nice"]), inner, max_size=3
        ),
    ),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5), st.booleans())
def test_never_accepts_what_jsonschema_rejects(doc: dict[str, Any], named: bool) -> None:
    if named:
        doc["name"] = "x"
    if surely_valid(CONTAINER_SPEC_SCHEMA, doc):
        assert VALIDATOR.is_valid(doc), doc
