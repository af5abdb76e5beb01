"""Properties of unit-name escaping (berth.systemd.names): `unescape(escape(x)) == x` for any
text, the escaped form is always a valid unit-name prefix, and distinct inputs never collide."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.errors import InvalidInput
from berth.systemd.names import UNIT_NAME_MAX, bus_label_escape, escape, unescape, unit_name

texts = st.text(max_size=40) | st.sampled_from(
    ["/", ".", "..", "-", "\\x2d", "a/b", "/a/b/", ".hidden", "@", "é"]
)


def _count(config: pytest.Config, n: int = 1) -> None:
    rec = getattr(config, "berth_reliability", None)
    if rec is not None:
        rec.inputs(n, "unit names (hypothesis)")


@settings(max_examples=400, deadline=None)
@given(text=texts)
def test_escape_round_trips_and_is_a_valid_unit_name(pytestconfig: pytest.Config, text: str) -> None:
    _count(pytestconfig)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates are not text systemd could ever see
        return
    escaped = escape(text)
    assert unescape(escaped) == text
    assert "/" not in escaped and not escaped.startswith(".")
    if escaped and len(escaped) + len(".service") <= UNIT_NAME_MAX and not escaped.startswith("-"):
        assert unit_name(escaped + ".service") == escaped + ".service"


@settings(max_examples=300, deadline=None)
@given(a=texts, b=texts)
def test_escape_is_injective(pytestconfig: pytest.Config, a: str, b: str) -> None:
    _count(pytestconfig, 2)
    try:
        a.encode(), b.encode()
    except UnicodeEncodeError:
        return
    if a != b:
        assert escape(a) != escape(b)
        assert bus_label_escape(a) != bus_label_escape(b)


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=300))
def test_unit_name_accepts_or_refuses_clearly(pytestconfig: pytest.Config, name: str) -> None:
    _count(pytestconfig)
    try:
        full = unit_name(name)
    except InvalidInput as exc:
        assert exc.message
        return
    assert len(full) <= UNIT_NAME_MAX and full.isascii() and "/" not in full
