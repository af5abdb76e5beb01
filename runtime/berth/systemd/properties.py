"""Typed unit properties: systemd property name -> D-Bus signature, and value conversion.

`StartTransientUnit` and `SetUnitProperties` take `a(sv)`: each value must carry the exact
signature systemd expects, or the call fails with a terse InvalidArgs. The table below is that
contract. `normalize` checks and canonicalises a user's value into JSON (what records store and
what the spec hash covers); `to_dbus` turns the canonical value into what the bus marshals.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from berth.errors import InvalidInput
from berth.systemd.sizes import INFINITY, UINT64_MAX, parse_size

_EXEC = "a(sasb)"
_STRINGS = "as"

SIGNATURES: Mapping[str, str] = {
    # what runs
    "ExecStart": _EXEC,
    "ExecStartPre": _EXEC,
    "ExecStartPost": _EXEC,
    "ExecStop": _EXEC,
    "ExecStopPost": _EXEC,
    "Type": "s",
    "NotifyAccess": "s",
    "LoadCredential": "a(ss)",
    "SetCredential": "a(say)",
    "StartLimitBurst": "u",
    "StartLimitIntervalUSec": "t",
    "NUMAPolicy": "i",
    "NUMAMask": "ay",
    "RemainAfterExit": "b",
    "Environment": _STRINGS,
    "WorkingDirectory": "s",
    "RootDirectory": "s",
    "User": "s",
    "Group": "s",
    "SupplementaryGroups": _STRINGS,
    "DynamicUser": "b",
    "UMask": "u",
    "Nice": "i",
    "OOMScoreAdjust": "i",
    "CPUAffinity": "ay",
    "NoNewPrivileges": "b",
    "PrivateTmp": "b",
    "PrivateNetwork": "b",
    "PrivateDevices": "b",
    "ProtectSystem": "s",
    "ProtectHome": "s",
    # unit identity and lifecycle
    "Description": "s",
    "Slice": "s",
    "CollectMode": "s",
    "Wants": _STRINGS,
    "Requires": _STRINGS,
    "BindsTo": _STRINGS,
    "PartOf": _STRINGS,
    "After": _STRINGS,
    "Before": _STRINGS,
    "Restart": "s",
    "RestartUSec": "t",
    "TimeoutStartUSec": "t",
    "TimeoutStopUSec": "t",
    "RuntimeMaxUSec": "t",
    "WatchdogUSec": "t",
    "OOMPolicy": "s",
    # stopping
    "KillMode": "s",
    "KillSignal": "i",
    "FinalKillSignal": "i",
    "SendSIGKILL": "b",
    "SendSIGHUP": "b",
    # output
    "StandardInput": "s",
    "StandardInputFileDescriptor": "h",
    "StandardOutputFileDescriptor": "h",
    "StandardErrorFileDescriptor": "h",
    "StandardOutput": "s",
    "StandardError": "s",
    "SyslogIdentifier": "s",
    "LogExtraFields": "aay",
    # resource control (cgroups)
    "MemoryAccounting": "b",
    "MemoryMin": "t",
    "MemoryLow": "t",
    "MemoryHigh": "t",
    "MemoryMax": "t",
    "MemorySwapMax": "t",
    "MemoryLimit": "t",
    "TasksAccounting": "b",
    "TasksMax": "t",
    "CPUAccounting": "b",
    "CPUWeight": "t",
    "StartupCPUWeight": "t",
    "CPUShares": "t",
    "CPUQuotaPerSecUSec": "t",
    "CPUQuotaPeriodUSec": "t",
    "AllowedCPUs": "ay",
    "AllowedMemoryNodes": "ay",
    "IOAccounting": "b",
    "IOWeight": "t",
    "StartupIOWeight": "t",
    "BlockIOWeight": "t",
    "IOReadBandwidthMax": "a(st)",
    "IOWriteBandwidthMax": "a(st)",
    "IOReadIOPSMax": "a(st)",
    "IOWriteIOPSMax": "a(st)",
    "Delegate": "b",
    "DevicePolicy": "s",
    "DeviceAllow": "a(ss)",
    "ManagedOOMSwap": "s",
    "ManagedOOMMemoryPressure": "s",
    # resource limits (setrlimit)
    "LimitNOFILE": "t",
    "LimitNPROC": "t",
    "LimitCORE": "t",
    "LimitMEMLOCK": "t",
}

# `t` properties that are byte counts: they also accept "64M"-style sizes.
SIZE_PROPERTIES = frozenset(
    {"MemoryMin", "MemoryLow", "MemoryHigh", "MemoryMax", "MemorySwapMax", "MemoryLimit"}
)
SIGNAL_PROPERTIES = frozenset({"KillSignal", "FinalKillSignal"})
# Weights read back as UINT64_MAX when unset: that means "not set", not "infinity".
UNSET_AT_MAX = frozenset(
    {"CPUWeight", "StartupCPUWeight", "CPUShares", "IOWeight", "StartupIOWeight", "BlockIOWeight"}
)
_INT_RANGES = {"i": (-(2**31), 2**31 - 1), "u": (0, 2**32 - 1), "t": (0, UINT64_MAX)}


@dataclass(frozen=True)
class Property:
    """One typed property, ready for the bus: `value` already matches `signature`."""

    name: str
    signature: str
    value: Any


def signature_of(name: str) -> str:
    try:
        return SIGNATURES[name]
    except KeyError:
        raise InvalidInput(
            f"unknown systemd property {name!r}: berth does not know its D-Bus type "
            "(see berth.systemd.properties.SIGNATURES)",
            property=name,
        ) from None


def _fail(name: str, value: Any, expected: str) -> InvalidInput:
    return InvalidInput(f"property {name}: {value!r} is not {expected}", property=name)


def _int(name: str, value: Any, sig: str) -> int:
    lo, hi = _INT_RANGES[sig]
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(name, value, f"an integer in {lo}..{hi}")
    return value


def _strings(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(name, value, "a list of strings")
    return list(value)


def parse_cpu_set(name: str, value: Any) -> list[int]:
    """A CPU (or NUMA node) set from `[0, 2]` or `"0-1,3"` as a sorted list of indices."""
    items: list[int] = []
    if isinstance(value, str):
        try:
            for part in filter(None, (p.strip() for p in value.split(","))):
                lo, _, hi = part.partition("-")
                items.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise _fail(name, value, "a CPU list such as '0-1,3'") from None
    elif isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        items = list(value)
    else:
        raise _fail(name, value, "a CPU list such as '0-1,3' or [0, 1, 3]")
    if any(i < 0 or i >= 8192 for i in items):
        raise _fail(name, value, "a CPU list with indices in 0..8191")
    return sorted(set(items))


def cpu_set_bytes(cpus: list[int]) -> bytes:
    """systemd's `ay` CPU mask: bit n of byte n//8 is CPU n."""
    mask = bytearray((max(cpus) // 8 + 1) if cpus else 0)
    for cpu in cpus:
        mask[cpu // 8] |= 1 << (cpu % 8)
    return bytes(mask)


def cpu_set_from_bytes(mask: bytes) -> list[int]:
    return [i * 8 + bit for i, byte in enumerate(mask) for bit in range(8) if byte >> bit & 1]


def _signal_number(name: str, value: Any) -> int:
    if isinstance(value, str):
        key = value.upper()
        key = key if key.startswith("SIG") else f"SIG{key}"
        try:
            return int(signal.Signals[key])
        except KeyError:
            raise _fail(name, value, "a signal name such as 'SIGTERM'") from None
    return _int(name, value, "i")


def normalize(name: str, value: Any) -> Any:
    """Check `value` against the property's type; return its canonical JSON form."""
    sig = signature_of(name)
    if sig == "h":
        raise InvalidInput(f"property {name} passes a file descriptor of the caller; a spec cannot set it")
    if sig == "aay":
        raise InvalidInput(f"property {name} is set by berth itself (labels); a spec cannot set it")
    if sig == "s":
        if not isinstance(value, str) or "\0" in value:
            raise _fail(name, value, "a string")
        return value
    if sig == "b":
        if not isinstance(value, bool):
            raise _fail(name, value, "true or false")
        return value
    if name in SIGNAL_PROPERTIES:
        return _signal_number(name, value)
    if sig == "t" and value == INFINITY:
        return INFINITY
    if name in SIZE_PROPERTIES and isinstance(value, str):
        return parse_size(value, f"property {name}")
    if sig in _INT_RANGES:
        return _int(name, value, sig)
    if sig == _STRINGS:
        if name == "Environment" and isinstance(value, dict):
            value = [f"{k}={v}" for k, v in sorted(value.items())]
        return _strings(name, value)
    if sig == "ay":
        return parse_cpu_set(name, value)
    if sig == _EXEC:
        one = isinstance(value, list) and value and all(isinstance(v, str) for v in value)
        commands = [value] if one else value
        if (
            not isinstance(commands, list)
            or not commands
            or not all(isinstance(c, list) and c for c in commands)
        ):
            raise _fail(name, value, "a command (a list of strings) or a list of commands")
        return [_strings(name, c) for c in commands]
    if sig == "a(say)":  # credentials: [id, data]; data is text in JSON, bytes on the bus
        if not isinstance(value, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in value
        ):
            raise _fail(name, value, "a list of [id, text] pairs")
        return [list(p) for p in value]
    if sig == "a(ss)":
        if not isinstance(value, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in value
        ):
            raise _fail(name, value, "a list of [string, string] pairs")
        return [list(p) for p in value]
    if sig == "a(st)":  # per-device IO limits: [path, n]; n as for a "t" limit
        if not isinstance(value, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in value
        ):
            raise _fail(name, value, "a list of [device path, limit] pairs")
        return [[p[0], INFINITY if p[1] == INFINITY else _int(name, p[1], "t")] for p in value]
    raise AssertionError(f"no conversion for signature {sig}")  # pragma: no cover


def to_dbus(name: str, value: Any) -> Property:
    """The bus form of a canonical value (as returned by `normalize`)."""
    sig = signature_of(name)
    if sig == "t" and value == INFINITY:
        return Property(name, sig, UINT64_MAX)
    if sig == "ay":
        return Property(name, sig, cpu_set_bytes(value))
    if sig == _EXEC:
        return Property(name, sig, [[argv[0], list(argv), False] for argv in value])
    if sig == "a(say)":
        return Property(name, sig, [[k, v.encode() if isinstance(v, str) else bytes(v)] for k, v in value])
    if sig == "a(st)":
        return Property(name, sig, [[path, UINT64_MAX if n == INFINITY else n] for path, n in value])
    return Property(name, sig, value)


def from_dbus(value: Any) -> Any:
    """Unwrap Variants (recursively) from a property read back from systemd."""
    if hasattr(value, "signature") and hasattr(value, "value"):
        return from_dbus(value.value)
    if isinstance(value, (list, tuple)):
        return [from_dbus(v) for v in value]
    if isinstance(value, dict):
        return {k: from_dbus(v) for k, v in value.items()}
    return value


def json_value(value: Any, name: str = "") -> Any:
    """A property value as JSON: UINT64_MAX is 'infinity' (None for unset weights), byte masks
    are CPU lists."""
    if value == UINT64_MAX:
        return None if name in UNSET_AT_MAX else INFINITY
    if isinstance(value, (bytes, bytearray)):
        return cpu_set_from_bytes(bytes(value))
    if isinstance(value, list):
        return [json_value(v) for v in value]
    return value
