"""JSON for the shim without the `json` module: `loads` and `dumps` of plain data.

The shim is a fresh Python process at every start and stop of a container, on the path of
`berth run`, and `import json` costs it about 10 ms (it pulls in `re`, `enum`, `functools`,
`collections`). What the shim reads and writes is small and plain: the config the runtime wrote
with `json.dumps`, and one-line reports. `loads` takes any valid JSON (and is lenient about what
json.dumps never produces, such as leading zeros); `dumps` gives exactly what `json.dumps` gives
for dicts with string keys, lists, tuples, strings, ints, floats, booleans and None.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `from typing import`: importing typing costs the shim ms at every start
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"
_UNESCAPE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPE = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_NUMBER = frozenset("+-0123456789.eE")
_CONSTANTS = {"true": True, "false": False, "null": None}
_FLOATS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class JSONError(ValueError):
    """Text that is not JSON."""


def loads(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        value, i = _value(text, _skip(text, 0))
    except IndexError:
        raise JSONError("unexpected end of JSON text") from None
    if _skip(text, i) != len(text):
        raise JSONError(f"extra data at character {i}")
    return value


def _skip(s: str, i: int) -> int:
    n = len(s)
    while i < n and s[i] in _WHITESPACE:
        i += 1
    return i


def _value(s: str, i: int) -> tuple[Any, int]:
    c = s[i]
    if c == '"':
        return _string(s, i + 1)
    if c == "{":
        obj: dict[str, Any] = {}
        i = _skip(s, i + 1)
        if s[i] == "}":
            return obj, i + 1
        while True:
            if s[i] != '"':
                raise JSONError(f"expected a string key at character {i}")
            key, i = _string(s, i + 1)
            i = _skip(s, i)
            if s[i] != ":":
                raise JSONError(f"expected ':' at character {i}")
            obj[key], i = _value(s, _skip(s, i + 1))
            i = _skip(s, i)
            if s[i] == "}":
                return obj, i + 1
            if s[i] != ",":
                raise JSONError(f"expected ',' or '}}' at character {i}")
            i = _skip(s, i + 1)
    if c == "[":
        items: list[Any] = []
        i = _skip(s, i + 1)
        if s[i] == "]":
            return items, i + 1
        while True:
            item, i = _value(s, i)
            items.append(item)
            i = _skip(s, i)
            if s[i] == "]":
                return items, i + 1
            if s[i] != ",":
                raise JSONError(f"expected ',' or ']' at character {i}")
            i = _skip(s, i + 1)
    for word, const in _CONSTANTS.items():
        if s.startswith(word, i):
            return const, i + len(word)
    for word, number in _FLOATS.items():
        if s.startswith(word, i):
            return number, i + len(word)
    j = i
    while j < len(s) and s[j] in _NUMBER:
        j += 1
    token = s[i:j]
    try:
        return (float(token) if any(ch in token for ch in ".eE") else int(token)), j
    except ValueError:
        raise JSONError(f"unexpected {s[i : i + 10]!r} at character {i}") from None


def _string(s: str, i: int) -> tuple[str, int]:
    parts: list[str] = []
    while True:
        end = s.find('"', i)
        if end < 0:
            raise JSONError("unterminated string")
        esc = s.find("\\", i, end)
        if esc < 0:
            parts.append(s[i:end])
            return "".join(parts), end + 1
        parts.append(s[i:esc])
        kind = s[esc + 1]
        if kind == "u":
            code, i = _hex4(s, esc + 2), esc + 6
            if 0xD800 <= code < 0xDC00 and s.startswith("\\u", i):
                low = _hex4(s, i + 2)
                if 0xDC00 <= low < 0xE000:
                    code, i = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00), i + 6
            parts.append(chr(code))
        elif kind in _UNESCAPE:
            parts.append(_UNESCAPE[kind])
            i = esc + 2
        else:
            raise JSONError(f"bad escape \\{kind} at character {esc}")


def _hex4(s: str, i: int) -> int:
    digits = s[i : i + 4]
    if len(digits) != 4:
        raise JSONError(f"bad \\u escape at character {i - 2}")
    try:
        return int(digits, 16)
    except ValueError:
        raise JSONError(f"bad \\u escape at character {i - 2}") from None


def dumps(obj: Any) -> str:
    """What `json.dumps(obj)` returns (default separators, ensure_ascii)."""
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, str):
        return _quote(obj)
    if isinstance(obj, int):
        return int.__repr__(obj)
    if isinstance(obj, float):
        if obj != obj:
            return "NaN"
        if obj in (float("inf"), float("-inf")):
            return "Infinity" if obj > 0 else "-Infinity"
        return float.__repr__(obj)
    if isinstance(obj, (list, tuple)):
        return "[" + ", ".join(dumps(v) for v in obj) + "]"
    if isinstance(obj, dict):
        for key in obj:
            if not isinstance(key, str):
                raise TypeError(f"keys must be str, not {type(key).__name__}")
        return "{" + ", ".join(f"{_quote(k)}: {dumps(v)}" for k, v in obj.items()) + "}"
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _quote(s: str) -> str:
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    out = ['"']
    for ch in s:
        if ch in _ESCAPE:
            out.append(_ESCAPE[ch])
        elif " " <= ch <= "~":
            out.append(ch)
        elif ord(ch) > 0xFFFF:
            code = ord(ch) - 0x10000
            out.append(f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    out.append('"')
    return "".join(out)
