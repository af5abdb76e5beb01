"""Unit names: systemd's validation rules, systemd-escape escaping, D-Bus object paths."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.errors import InvalidInput
from berth.systemd.names import (
    bus_label_escape,
    escape,
    service_name,
    slice_name,
    unescape,
    unit_name,
    unit_object_path,
)

VALID = [
    ("web", "web.service"),
    ("web.service", "web.service"),
    ("a:b_c-d.e", "a:b_c-d.e.service"),
    ("worker@1", "worker@1.service"),
    ("x.bar", "x.bar.service"),
    ("a\\x2db", "a\\x2db.service"),
    ("a" * 247, "a" * 247 + ".service"),
]

# (given name, a fragment the error message must contain)
INVALID = [
    ("", "is empty"),
    ("../x", "contains '/'"),
    ("a/b", "contains '/'"),
    ("x;y", "contains ';'"),
    ("x y", "contains ' '"),
    ("x\ny", "contains '\\n'"),
    ("caf\u00e9", "non-ASCII"),
    ("a" * 248, "at most 255"),
    ("-x", "must not start with '-'"),
    (".x", "must not start with '.'"),
    ("x@.service", "is a template"),
    ("@x", "nothing before '@'"),
    ("a@b@c", "more than one '@'"),
    ("a\\b", "backslash"),
    ("x.socket", "is not a service"),
    ("x.target", "is not a service"),
]


@pytest.mark.parametrize("given_name, expected", VALID)
def test_service_name_accepts_and_completes(given_name: str, expected: str) -> None:
    assert service_name(given_name) == expected


@pytest.mark.parametrize("given_name, fragment", INVALID)
def test_service_name_rejects_with_the_reason(given_name: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as err:
        service_name(given_name)
    assert fragment in err.value.message


def test_rejection_shows_the_name_as_given() -> None:
    with pytest.raises(InvalidInput, match=r"'a/b' contains"):
        service_name("a/b")


def test_non_string_name() -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        unit_name(42)  # type: ignore[arg-type]


def test_slice_name() -> None:
    assert slice_name("berth") == "berth.slice"
    assert slice_name("berth-web.slice") == "berth-web.slice"
    with pytest.raises(InvalidInput, match="not a slice"):
        slice_name("berth.service")


@pytest.mark.parametrize(
    "text, escaped",
    [
        ("/foo/bar-baz", "-foo-bar\\x2dbaz"),
        (".hidden", "\\x2ehidden"),
        ("a.b", "a.b"),
        ("caf\u00e9 x", "caf\\xc3\\xa9\\x20x"),
        ("", ""),
    ],
)
def test_escape_known_values(text: str, escaped: str) -> None:
    assert escape(text) == escaped


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_unescape_inverts_escape(text: str) -> None:
    assert unescape(escape(text)) == text


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60))
def test_escaped_text_is_a_valid_unit_name_prefix(text: str) -> None:
    """Escaping never yields a bad character; only the length limit can still refuse it."""
    escaped = escape(text)
    assert not escaped.startswith(".")
    name = f"{escaped}.service"
    if escaped.startswith("-"):  # berth refuses a leading '-' (an option to journalctl), systemd does not
        return
    if len(name) <= 255:
        assert service_name(name) == name
    else:
        with pytest.raises(InvalidInput, match="at most 255"):
            service_name(name)


@pytest.mark.skipif(shutil.which("systemd-escape") is None, reason="systemd-escape not installed")
@settings(max_examples=40, deadline=None)
@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
        min_size=1,
        max_size=30,
    )
)
def test_escape_matches_systemd_escape(text: str) -> None:
    out = subprocess.run(["systemd-escape", "--", text], capture_output=True, text=True, check=True)
    assert escape(text) == out.stdout.rstrip("\n")


@pytest.mark.parametrize(
    "label, escaped",
    [
        ("foo.service", "foo_2eservice"),
        ("foo-bar.service", "foo_2dbar_2eservice"),
        ("1x.service", "_31x_2eservice"),
        ("x1", "x1"),
        ("", "_"),
    ],
)
def test_bus_label_escape(label: str, escaped: str) -> None:
    assert bus_label_escape(label) == escaped


def test_unit_object_path() -> None:
    assert unit_object_path("web.service") == "/org/freedesktop/systemd1/unit/web_2eservice"
