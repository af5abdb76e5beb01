"""Property: the container spec validator never crashes. Any JSON document either becomes a
canonical spec or is refused with InvalidInput (the CLI's one error type for bad input); a
spec it accepts survives its own round trip with the same hash."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from berth.containers.schema import CONTAINER_SPEC_SCHEMA
from berth.containers.spec import ContainerSpec, parse_spec
from berth.errors import InvalidInput
from tests.reliability_plugin import recorder as _rec

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(
        ["", "/", "..", "/a/../..", "64M", "x" * 300, "a:b", "\x00", "-1", "0-1", "bridge", "host"]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELDS = sorted(CONTAINER_SPEC_SCHEMA["properties"])
MOUNT_KEYS = ["type", "source", "target", "read_only", "size", "mode"]
RESOURCE_KEYS = sorted(CONTAINER_SPEC_SCHEMA["properties"]["resources"]["properties"])


def _plausible(field: str) -> st.SearchStrategy[Any]:
    """Values that get past the schema often, so the semantic checks behind it are exercised."""
    if field == "name":
        return st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,70}", fullmatch=True) | st.text(max_size=70)
    if field in ("command", "entrypoint", "cap_add", "cap_drop", "networks", "layers"):
        return st.lists(
            st.text(max_size=10) | st.sampled_from(["/r", "KILL", "cap_net_admin", "web"]), max_size=3
        )
    if field in ("env", "labels"):
        return st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3)
    if field == "mounts":
        mount = st.fixed_dictionaries(
            {
                "type": st.sampled_from(["bind", "tmpfs", "volume", "x"]),
                "target": st.text(max_size=10) | st.just("/t"),
            },
            optional={k: json_values for k in MOUNT_KEYS if k not in ("type", "target")},
        )
        return st.lists(mount, max_size=3)
    if field == "secrets":
        return st.lists(
            st.fixed_dictionaries({"name": st.text(max_size=6), "source": st.text(max_size=8)}), max_size=2
        )
    if field == "resources":
        return st.dictionaries(st.sampled_from(RESOURCE_KEYS), json_values, max_size=4)
    if field == "ports":
        return st.lists(
            st.text(max_size=12) | st.dictionaries(st.text(max_size=6), json_values, max_size=3), max_size=2
        )
    if field in ("read_only", "privileged", "no_new_privileges"):
        return st.booleans()
    if field in ("stop_timeout",):
        return st.integers(min_value=-5, max_value=100000)
    return json_values


near_specs = st.fixed_dictionaries(
    {"name": _plausible("name")},
    optional={f: _plausible(f) for f in FIELDS if f != "name"},
)


def _check(doc: Any) -> None:
    try:
        spec = parse_spec(doc)
    except InvalidInput as exc:
        assert exc.message  # a refusal always says why
        return
    assert isinstance(spec, ContainerSpec)
    again = ContainerSpec.from_json(spec.to_json())
    assert again == spec and again.spec_hash == spec.spec_hash


@SETTINGS
@given(doc=json_values)
def test_any_json_document_is_a_spec_or_invalid_input(pytestconfig: pytest.Config, doc: Any) -> None:
    if rec := _rec(pytestconfig):
        rec.inputs(1, "spec documents (hypothesis)")
    _check(doc)


@SETTINGS
@given(doc=near_specs)
def test_near_valid_specs_are_a_spec_or_invalid_input(
    pytestconfig: pytest.Config, doc: dict[str, Any]
) -> None:
    if rec := _rec(pytestconfig):
        rec.inputs(1, "spec documents (hypothesis)")
    _check(doc)
