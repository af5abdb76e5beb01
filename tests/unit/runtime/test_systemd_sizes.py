"""systemd's limit syntax: sizes, counts and CPU percentages, with errors naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from berth.errors import InvalidInput
from berth.systemd.sizes import (
    INFINITY,
    parse_count,
    parse_percent,
    parse_size,
    percent_to_usec_per_sec,
)

SIZES: list[tuple[Any, Any]] = [
    (0, 0),
    (67108864, 67108864),
    ("1024", 1024),
    ("512K", 512 * 1024),
    ("64M", 64 * 1024**2),
    ("64m", 64 * 1024**2),
    ("1G", 1024**3),
    ("1.5G", 3 * 1024**3 // 2),
    ("2T", 2 * 1024**4),
    (" 8M ", 8 * 1024**2),
    ("infinity", INFINITY),
    ("Infinity", INFINITY),
]
BAD_SIZES: list[Any] = ["12 potatoes", "", "-1", "64MB", "1e6", "50%", "M", -5, True, 1.5, None, 2**64]


@pytest.mark.parametrize("value, expected", SIZES)
def test_parse_size(value: Any, expected: Any) -> None:
    assert parse_size(value, "resources.memory_max") == expected


@pytest.mark.parametrize("value", BAD_SIZES)
def test_parse_size_rejects_naming_the_field(value: Any) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_size(value, "spec field resources.memory_max")
    assert err.value.message.startswith("spec field resources.memory_max: ")
    assert repr(value) in err.value.message or str(value) in err.value.message


@pytest.mark.parametrize(
    "value, expected", [(50, 50), ("50", 50), (0, 0), ("infinity", INFINITY), (" infinity ", INFINITY)]
)
def test_parse_count(value: Any, expected: Any) -> None:
    assert parse_count(value, "resources.tasks_max") == expected


@pytest.mark.parametrize("value", [-1, "many", 1.0, True, "", None])
def test_parse_count_rejects(value: Any) -> None:
    with pytest.raises(InvalidInput, match=r"^resources\.tasks_max: "):
        parse_count(value, "resources.tasks_max")


@pytest.mark.parametrize(
    "value, canonical, usec",
    [
        ("20%", "20%", 200_000),
        ("20.0%", "20%", 200_000),
        ("150%", "150%", 1_500_000),
        ("1.5%", "1.5%", 15_000),
        ("0.25%", "0.25%", 2_500),
        (" 5 %", "5%", 50_000),
    ],
)
def test_parse_percent(value: str, canonical: str, usec: int) -> None:
    assert parse_percent(value, "resources.cpu_quota") == canonical
    assert percent_to_usec_per_sec(canonical) == usec


@pytest.mark.parametrize("value", ["20", "0%", "-5%", "1.234%", "abc%", 20, None, "infinity"])
def test_parse_percent_rejects(value: Any) -> None:
    with pytest.raises(InvalidInput, match=r"^resources\.cpu_quota: cannot read"):
        parse_percent(value, "resources.cpu_quota")
