"""Unit names: validation by systemd's rules, `systemd-escape` escaping, D-Bus object paths.

Every name that reaches systemd, a journal query or the record store passes through here first,
so a bad name fails early with a message that says what is wrong with it.
"""

from __future__ import annotations

import re
import string

from berth.errors import InvalidInput

UNIT_NAME_MAX = 255  # systemd's UNIT_NAME_MAX is 256 including the terminating NUL
UNIT_TYPES = frozenset(
    {"service", "socket", "target", "device", "mount", "automount", "swap", "timer", "path", "slice", "scope"}
)
_PLAIN = frozenset(string.ascii_letters + string.digits + ":_.")
_NAME_CHARS = _PLAIN | {"-", "@", "\\"}
_ESCAPE_SEQ = re.compile(r"\\x[0-9a-fA-F]{2}")
UNIT_PATH_PREFIX = "/org/freedesktop/systemd1/unit/"


def _char_problem(name: str, what: str) -> str | None:
    """Why `name` as given cannot be part of a unit name (empty, a forbidden character)."""
    if not name:
        return f"{what} is empty"
    for ch in name:
        if ch not in _NAME_CHARS:
            if not ch.isascii():
                return f"{what} {name!r} contains the non-ASCII character {ch!r}"
            if ch == "/":
                return f"{what} {name!r} contains '/'; escape paths with systemd-escape rules"
            return (
                f"{what} {name!r} contains {ch!r}; allowed are letters, digits and ':_.-@' "
                "(and \\xNN escapes)"
            )
    return None


def _problem(name: str, what: str) -> str | None:
    """Why `name`, complete with its type suffix, is not a valid unit name, or None."""
    if len(name) > UNIT_NAME_MAX:
        return (
            f"{what} {name[:40]!r}... is {len(name)} characters long; systemd allows at most "
            f"{UNIT_NAME_MAX} including the type suffix"
        )
    if name[0] in "-.":
        return f"{what} {name!r} must not start with {name[0]!r}"
    if "\\" in _ESCAPE_SEQ.sub("", name):
        return f"{what} {name!r} has a backslash that is not part of a \\xNN escape"
    prefix, dot, suffix = name.rpartition(".")
    if not dot or not prefix:
        return f"{what} {name!r} has no type suffix such as '.service'"
    if suffix not in UNIT_TYPES:
        return f"{what} {name!r} ends in '.{suffix}', which is not a unit type"
    if name.count("@") > 1:
        return f"{what} {name!r} contains more than one '@'"
    if "@" in prefix:
        template, _, instance = prefix.partition("@")
        if not template:
            return f"{what} {name!r} has nothing before '@'"
        if not instance:
            return f"{what} {name!r} is a template; give an instance, as in {template}@1.{suffix}"
    return None


def unit_name(name: str, default_type: str = "service", what: str = "unit name") -> str:
    """Validate `name`, appending `.default_type` when it carries no unit-type suffix."""
    if not isinstance(name, str):
        raise InvalidInput(f"{what} must be a string, not {type(name).__name__}")
    _, dot, suffix = name.rpartition(".")
    full = name if dot and suffix in UNIT_TYPES else f"{name}.{default_type}"
    problem = _char_problem(name, what) or _problem(full, what)
    if problem:
        raise InvalidInput(problem, name=name)
    return full


def service_name(name: str, what: str = "unit name") -> str:
    """A valid `.service` name: `berth unit` manages services only."""
    full = unit_name(name, "service", what)
    if not full.endswith(".service"):
        raise InvalidInput(f"{what} {name!r} is not a service; berth unit manages .service units")
    return full


def slice_name(name: str, what: str = "slice") -> str:
    full = unit_name(name, "slice", what)
    if not full.endswith(".slice"):
        raise InvalidInput(f"{what} {name!r} is not a slice (it must end in '.slice')")
    return full


def _escape_byte(b: int) -> str:
    return f"\\x{b:02x}"


def escape(text: str) -> str:
    """Escape `text` into one unit-name component, exactly as `systemd-escape TEXT` does.

    '/' becomes '-'; bytes outside [A-Za-z0-9:_.] (and a leading '.') become `\\xNN` of their
    UTF-8 encoding, so the result is always a valid unit-name prefix and `unescape` inverts it.
    """
    out: list[str] = []
    for i, b in enumerate(text.encode("utf-8")):
        ch = chr(b)
        if ch == "/":
            out.append("-")
        elif (i == 0 and ch == ".") or ch not in _PLAIN:
            out.append(_escape_byte(b))
        else:
            out.append(ch)
    return "".join(out)


def unescape(text: str) -> str:
    """Invert `escape` (`systemd-escape --unescape`)."""
    raw = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "-":
            raw += b"/"
            i += 1
        elif _ESCAPE_SEQ.match(text, i):
            raw.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            raw += text[i].encode("utf-8")
            i += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{text!r} does not unescape to UTF-8 text") from exc


def bus_label_escape(label: str) -> str:
    """Escape one object-path label the way sd-bus does (`bus_label_escape`)."""
    if not label:
        return "_"
    out: list[str] = []
    for i, b in enumerate(label.encode("utf-8")):
        ch = chr(b)
        if ch.isascii() and (ch.isalpha() or (i > 0 and ch.isdigit())):
            out.append(ch)
        else:
            out.append(f"_{b:02x}")
    return "".join(out)


def unit_object_path(name: str) -> str:
    """The object path systemd serves a unit at; saves a GetUnit round trip."""
    return UNIT_PATH_PREFIX + bus_label_escape(name)
