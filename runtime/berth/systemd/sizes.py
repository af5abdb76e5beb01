"""systemd's value syntax for limits: sizes ("64M"), percentages ("20%"), counts, "infinity".

Parsed here, once, into canonical values: an int, or the string "infinity" (UINT64_MAX on the
bus). Errors name the field so a user knows which line of the spec to fix.
"""

from __future__ import annotations

import re
from typing import Any

from berth.errors import InvalidInput

UINT64_MAX = 2**64 - 1  # systemd's "infinity" for limits
INFINITY = "infinity"
USEC_PER_SEC = 1_000_000

# Powers of 1024, as systemd's parse_size() reads MemoryMax= and friends.
_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTPE]?)\s*$", re.IGNORECASE)
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d{1,2})?)\s*%\s*$")

Limit = int | str  # an int, or INFINITY


def parse_size(value: Any, field: str) -> Limit:
    """Bytes from an int, "512K", "64M", "1.5G" (powers of 1024), or "infinity"."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < UINT64_MAX:
            raise InvalidInput(f"{field}: {value} is out of range for a size in bytes", field=field)
        return value
    if isinstance(value, str):
        if value.strip().lower() == INFINITY:
            return INFINITY
        m = _SIZE.match(value)
        if m:
            from decimal import Decimal  # here: most specs carry no sizes, and it costs ms

            number = Decimal(m.group(1)) * (1024 ** _UNITS[m.group(2).upper()])
            if number < UINT64_MAX:
                return int(number)
    raise InvalidInput(
        f"{field}: cannot read {value!r} as a size; use a number of bytes, a number with a "
        "K, M, G or T suffix (powers of 1024) such as '64M', or 'infinity'",
        field=field,
    )


def parse_count(value: Any, field: str, minimum: int = 0, maximum: int = UINT64_MAX - 1) -> Limit:
    """A plain count (such as TasksMax), or "infinity"."""
    if isinstance(value, str) and value.strip().lower() == INFINITY:
        return INFINITY
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum:
        return value
    raise InvalidInput(
        f"{field}: {value!r} is not an integer in {minimum}..{maximum} or 'infinity'", field=field
    )


def parse_percent(value: Any, field: str) -> str:
    """A CPU quota such as "20%" or "150%" (of one CPU), canonicalised ("20.0%" -> "20%")."""
    if isinstance(value, str):
        m = _PERCENT.match(value)
        if m:
            from decimal import Decimal, InvalidOperation

            try:
                pct = Decimal(m.group(1))
            except InvalidOperation:  # pragma: no cover - the regex admits only decimals
                pct = Decimal(0)
            if pct > 0:
                text = format(pct.normalize(), "f")
                return f"{text}%"
    raise InvalidInput(
        f"{field}: cannot read {value!r} as a CPU quota; use a percentage of one CPU greater "
        "than 0 with at most two decimals, such as '20%' or '150%'",
        field=field,
    )


def percent_to_usec_per_sec(percent: str) -> int:
    """ "20%" -> 200000: systemd's CPUQuotaPerSecUSec for that share of one CPU."""
    from decimal import Decimal

    return int(Decimal(percent.rstrip("%")) * USEC_PER_SEC / 100)
