"""Property typing: known names get their D-Bus signature and canonical value; others fail."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from berth.errors import InvalidInput
from berth.systemd.properties import (
    SIGNATURES,
    UINT64_MAX,
    cpu_set_bytes,
    cpu_set_from_bytes,
    from_dbus,
    json_value,
    normalize,
    signature_of,
    to_dbus,
)

# (property, user value, canonical JSON, bus signature, bus value)
TYPED: list[tuple[str, Any, Any, str, Any]] = [
    ("Description", "web", "web", "s", "web"),
    ("RemainAfterExit", True, True, "b", True),
    ("Nice", -5, -5, "i", -5),
    ("UMask", 0o022, 0o022, "u", 0o022),
    ("MemoryMax", "64M", 67108864, "t", 67108864),
    ("MemoryMax", 1000, 1000, "t", 1000),
    ("MemoryMax", "infinity", "infinity", "t", UINT64_MAX),
    ("TasksMax", "infinity", "infinity", "t", UINT64_MAX),
    ("RestartUSec", 500_000, 500_000, "t", 500_000),
    ("KillSignal", "SIGINT", int(signal.SIGINT), "i", int(signal.SIGINT)),
    ("KillSignal", "kill", int(signal.SIGKILL), "i", int(signal.SIGKILL)),
    ("KillSignal", 15, 15, "i", 15),
    ("Environment", ["A=1"], ["A=1"], "as", ["A=1"]),
    ("Environment", {"B": "2", "A": "1"}, ["A=1", "B=2"], "as", ["A=1", "B=2"]),
    ("CPUAffinity", "0-1,3", [0, 1, 3], "ay", b"\x0b"),
    ("CPUAffinity", [9, 0], [0, 9], "ay", b"\x01\x02"),
    ("AllowedCPUs", [], [], "ay", b""),
    (
        "ExecStart",
        ["/bin/true", "x"],
        [["/bin/true", "x"]],
        "a(sasb)",
        [["/bin/true", ["/bin/true", "x"], False]],
    ),
    (
        "ExecStartPre",
        [["/bin/a"], ["/bin/b", "1"]],
        [["/bin/a"], ["/bin/b", "1"]],
        "a(sasb)",
        [["/bin/a", ["/bin/a"], False], ["/bin/b", ["/bin/b", "1"], False]],
    ),
    ("DeviceAllow", [["/dev/null", "rw"]], [["/dev/null", "rw"]], "a(ss)", [["/dev/null", "rw"]]),
    (
        "SetCredential",
        [["token", "s3cr\u00e9t"]],
        [["token", "s3cr\u00e9t"]],
        "a(say)",
        [["token", "s3cr\u00e9t".encode()]],
    ),
]

# (property, bad value, fragment of the message)
BAD: list[tuple[str, Any, str]] = [
    ("Bogus", 1, "unknown systemd property 'Bogus'"),
    ("Description", 5, "is not a string"),
    ("Description", "a\0b", "is not a string"),
    ("RemainAfterExit", "yes", "is not true or false"),
    ("Nice", 2**31, "is not an integer"),
    ("Nice", True, "is not an integer"),
    ("UMask", -1, "is not an integer"),
    ("TasksMax", -1, "is not an integer"),
    ("TasksMax", "lots", "is not an integer"),
    ("MemoryMax", "12 potatoes", "cannot read '12 potatoes' as a size"),
    ("KillSignal", "SIGNOPE", "signal name"),
    ("Environment", "A=1", "list of strings"),
    ("Environment", [1], "list of strings"),
    ("CPUAffinity", "0-x", "CPU list"),
    ("CPUAffinity", [-1], "CPU list"),
    ("CPUAffinity", 3, "CPU list"),
    ("ExecStart", [], "a command"),
    ("ExecStart", "/bin/true", "a command"),
    ("ExecStart", [[]], "a command"),
    ("DeviceAllow", [["/dev/null"]], "pairs"),
    ("SetCredential", [["token", 5]], "[id, text] pairs"),
]


@pytest.mark.parametrize("name, value, canonical, sig, bus", TYPED)
def test_typed_property(name: str, value: Any, canonical: Any, sig: str, bus: Any) -> None:
    assert normalize(name, value) == canonical
    prop = to_dbus(name, canonical)
    assert (prop.name, prop.signature, prop.value) == (name, sig, bus)


@pytest.mark.parametrize("name, value, fragment", BAD)
def test_bad_property(name: str, value: Any, fragment: str) -> None:
    with pytest.raises(InvalidInput) as err:
        normalize(name, value)
    assert fragment in err.value.message
    assert name in err.value.message


def test_signatures_of_the_documented_properties() -> None:
    expected = {
        "ExecStart": "a(sasb)", "Description": "s", "Slice": "s", "Environment": "as",
        "WorkingDirectory": "s", "User": "s", "Group": "s", "Type": "s", "RemainAfterExit": "b",
        "MemoryMax": "t", "MemoryHigh": "t", "MemorySwapMax": "t", "TasksMax": "t",
        "CPUQuotaPerSecUSec": "t", "CPUQuotaPeriodUSec": "t", "CPUWeight": "t", "IOWeight": "t",
        "Nice": "i", "CPUAffinity": "ay", "AllowedCPUs": "ay", "AllowedMemoryNodes": "ay",
        "KillMode": "s", "KillSignal": "i", "TimeoutStopUSec": "t", "Restart": "s",
        "RestartUSec": "t", "OOMPolicy": "s", "CollectMode": "s", "SendSIGKILL": "b",
        "StandardOutput": "s", "StandardError": "s", "SyslogIdentifier": "s",
        "IOReadBandwidthMax": "a(st)", "IOWriteBandwidthMax": "a(st)", "IOReadIOPSMax": "a(st)",
        "IOWriteIOPSMax": "a(st)",
    }  # fmt: skip
    assert {name: signature_of(name) for name in expected} == expected
    assert all(
        sig in {"s", "b", "i", "u", "t", "h", "aay", "as", "ay", "a(sasb)", "a(ss)", "a(say)", "a(st)"}
        for sig in SIGNATURES.values()
    )


def test_description_infinity_stays_a_string() -> None:
    assert to_dbus("Description", "infinity").value == "infinity"


@pytest.mark.parametrize("cpus", [[], [0], [7, 8], [0, 1, 2, 63], list(range(20))])
def test_cpu_mask_round_trip(cpus: list[int]) -> None:
    assert cpu_set_from_bytes(cpu_set_bytes(cpus)) == cpus


class FakeVariant:
    def __init__(self, signature: str, value: Any) -> None:
        self.signature = signature
        self.value = value


def test_from_dbus_unwraps_nested_variants() -> None:
    value = [("a", FakeVariant("v", FakeVariant("s", "x"))), {"k": FakeVariant("t", 5)}]
    assert from_dbus(FakeVariant("a(sv)", value)) == [["a", "x"], {"k": 5}]


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("MemoryMax", UINT64_MAX, "infinity"),
        ("CPUWeight", UINT64_MAX, None),
        ("IOWeight", 100, 100),
        ("CPUAffinity", b"\x05", [0, 2]),
        ("Slice", "system.slice", "system.slice"),
    ],
)
def test_json_value(name: str, value: Any, expected: Any) -> None:
    assert json_value(value, name) == expected


SAMPLES: dict[str, Any] = {
    "s": "x",
    "b": True,
    "i": 1,
    "u": 1,
    "t": 1,
    "as": ["x"],
    "ay": [0],
    "a(sasb)": ["/bin/true"],
    "a(ss)": [["a", "b"]],
    "a(say)": [["a", "b"]],
    "a(st)": [["/dev/vda", 1]],
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_every_known_property_converts(name: str) -> None:
    """A signature added to the table without a conversion would crash on user input."""
    if SIGNATURES[name] in ("h", "aay"):  # fds and journal fields come from berth, never a spec
        with pytest.raises(InvalidInput, match="cannot set it"):
            normalize(name, 1)
        return
    prop = to_dbus(name, normalize(name, SAMPLES[SIGNATURES[name]]))
    assert prop.signature == SIGNATURES[name]
