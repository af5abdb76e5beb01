"""Per-device IO limits: canonical form, refusals, the bus form, and how a path resolves to a disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from berth.containers.spec import parse_resources
from berth.errors import InvalidInput, NotFound
from berth.systemd.properties import Property, normalize, to_dbus
from berth.systemd.sizes import UINT64_MAX
from berth.units.devices import block_device, check_device_limits, parse_device_limits, with_resets
from berth.units.spec import parse_spec


def test_canonical_form_is_sorted_bytes_and_round_trips() -> None:
    value = parse_device_limits({"/dev/vdb": 1024, "/dev/vda": "10M"}, "io_read_bandwidth_max")
    assert value == {"/dev/vda": 10 << 20, "/dev/vdb": 1024} and list(value) == ["/dev/vda", "/dev/vdb"]
    assert parse_device_limits(value, "io_read_bandwidth_max") == value
    assert parse_device_limits({"/dev/vda": "infinity"}, "io_write_iops_max") == {"/dev/vda": "infinity"}


def test_the_same_limit_written_two_ways_is_the_same_unit_spec() -> None:
    a = parse_spec({"name": "a", "command": ["true"], "resources": {"io_read_bandwidth_max": {"/": "1M"}}})
    b = parse_spec({"name": "a", "command": ["true"], "resources": {"io_read_bandwidth_max": {"/": 1048576}}})
    assert a.spec_hash == b.spec_hash and parse_spec(a.to_json()) == a
    props = {p.name: p for p in a.systemd_properties()}
    assert props["IOReadBandwidthMax"] == Property("IOReadBandwidthMax", "a(st)", [["/", 1048576]])


REFUSED = [
    ("not-a-map", "/dev/vda:1M", "expected a map"),
    ("empty-map", {}, "expected a map"),
    ("relative", {"dev/vda": "1M"}, "not an absolute path"),
    ("dot-dot", {"/dev/../dev/vda": "1M"}, "not a normal path"),
    ("newline", {"/dev/vda\n": "1M"}, "not an absolute path"),
    ("zero-rate", {"/dev/vda": 0}, "would stop all IO"),
    ("potatoes", {"/dev/vda": "12 potatoes"}, "cannot read"),
    ("negative", {"/dev/vda": -1}, "out of range"),
]


@pytest.mark.parametrize("value, words", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_with_the_field_named(value: object, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_resources({"io_read_bandwidth_max": value})
    assert words in caught.value.message and "io_read_bandwidth_max" in caught.value.message


def test_iops_take_counts_not_sizes() -> None:
    with pytest.raises(InvalidInput):
        parse_device_limits({"/dev/vda": "10M"}, "io_read_iops_max")
    with pytest.raises(InvalidInput):
        parse_device_limits({"/dev/vda": 0}, "io_read_iops_max")
    assert parse_device_limits({"/dev/vda": "500"}, "io_read_iops_max") == {"/dev/vda": 500}


def test_bus_form_and_escape_hatch() -> None:
    assert to_dbus("IOReadIOPSMax", [["/dev/vda", "infinity"]]).value == [["/dev/vda", UINT64_MAX]]
    assert normalize("IOWriteBandwidthMax", [["/dev/vda", 5]]) == [["/dev/vda", 5]]
    with pytest.raises(InvalidInput):
        normalize("IOWriteBandwidthMax", {"/dev/vda": 5})


def test_a_live_change_clears_the_old_entries_first() -> None:
    """systemd merges a non-empty list into the unit's entries; an empty one clears them."""
    props = [to_dbus("IOReadBandwidthMax", [["/b", 1]]), to_dbus("CPUWeight", 5)]
    assert [(p.name, p.value) for p in with_resets(props)] == [
        ("IOReadBandwidthMax", []),
        ("IOReadBandwidthMax", [["/b", 1]]),
        ("CPUWeight", 5),
    ]


def test_paths_resolve_as_systemd_resolves_them(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        block_device("/no/such/disk", "f")
    with pytest.raises(InvalidInput, match="character device"):
        block_device("/dev/null", "f")
    with pytest.raises(InvalidInput, match="no disk backs"):
        block_device("/proc/self", "f")
    root = os.stat("/").st_dev
    if os.major(root) != 0:  # the machine's root is on a disk: a file on it names that disk
        assert block_device("/", "f") == f"{os.major(root)}:{os.minor(root)}"
    assert check_device_limits({"cpu_weight": 5}) == {}
