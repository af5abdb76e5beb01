"""Per-device IO limits (IOReadBandwidthMax= and friends): parsed, checked on the host, sent.

A limit names a block device by a path: its device node, or any file on a file system that a
disk backs (systemd then limits that disk). systemd accepts any path and, when it names nothing
it can use (a missing file, a character device, a file on tmpfs or overlayfs), only logs it and
enforces nothing, so berth resolves each path itself before anything is applied and refuses
what would be silently ignored.

Canonical form: `{path: value}` sorted by path, each value an int (bytes/s or IO operations/s)
or "infinity". A map is the whole truth: a live change first clears the property's entries
(an empty list on the bus), since systemd adds to a non-empty list rather than replacing it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from typing import Any

from berth.errors import InvalidInput, NotFound
from berth.systemd.properties import Property
from berth.systemd.sizes import Limit, parse_count, parse_size

# resources.<field> -> the systemd property it sets; all of signature a(st).
DEVICE_LIMITS = {
    "io_read_bandwidth_max": "IOReadBandwidthMax",
    "io_write_bandwidth_max": "IOWriteBandwidthMax",
    "io_read_iops_max": "IOReadIOPSMax",
    "io_write_iops_max": "IOWriteIOPSMax",
}
MAX_DEVICES = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _rate(value: Any, what: str) -> Limit:
    parsed = parse_size(value, what)
    if parsed == 0:
        raise InvalidInput(f"{what}: 0 bytes/s would stop all IO; give a positive rate or 'infinity'")
    return parsed


def _iops(value: Any, what: str) -> Limit:
    return parse_count(value, what, minimum=1)


def parse_device_limits(value: Any, field: str) -> dict[str, Limit]:
    """`{"/dev/vda": "10M"}` (or, for a canonical spec read back, the same map) in canonical form."""
    parse_one: Callable[[Any, str], Limit] = _iops if field.endswith("iops_max") else _rate
    if not isinstance(value, dict) or not value:
        raise InvalidInput(f"{field}: expected a map of device path to limit, such as {{'/dev/vda': '10M'}}")
    if len(value) > MAX_DEVICES:
        raise InvalidInput(f"{field}: {len(value)} devices; at most {MAX_DEVICES}")
    limits: dict[str, Limit] = {}
    for path, limit in value.items():
        if not isinstance(path, str) or not path.startswith("/") or _CONTROL.search(path):
            raise InvalidInput(f"{field}: {path!r} is not an absolute path of a device or a file on one")
        if os.path.normpath(path) != path and path != "/":
            raise InvalidInput(f"{field}: {path!r} is not a normal path (no '..', '.', '//' or trailing '/')")
        limits[path] = parse_one(limit, f"{field}[{path}]")
    return dict(sorted(limits.items()))


def block_device(path: str, field: str) -> str:
    """The block device ("MAJ:MIN") that a limit on `path` applies to, as systemd will resolve it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"{field}: {path} does not exist on this host", path=path) from None
    except OSError as exc:
        raise InvalidInput(f"{field}: cannot look at {path}: {exc.strerror}", path=path) from None
    if stat.S_ISBLK(st.st_mode):
        dev = st.st_rdev
    elif stat.S_ISCHR(st.st_mode):
        raise InvalidInput(
            f"{field}: {path} is a character device; IO limits apply to block devices", path=path
        )
    else:
        dev = st.st_dev
        if os.major(dev) == 0:
            raise InvalidInput(
                f"{field}: {path} is on a file system no disk backs (tmpfs, overlayfs, ...); name the "
                "disk's device node or a file on that disk",
                path=path,
            )
    return _whole_disk(os.major(dev), os.minor(dev))


def _whole_disk(major: int, minor: int) -> str:
    """A partition's disk (systemd limits whole disks): /sys/dev/block/M:N/partition marks one."""
    node = f"/sys/dev/block/{major}:{minor}"
    if os.path.exists(f"{node}/partition"):
        try:
            with open(f"{os.path.realpath(node)}/../dev") as fh:
                return fh.read().strip()
        except OSError:
            pass
    return f"{major}:{minor}"


def check_device_limits(resources: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Resolve every path of the device limits in `resources` on this host (raise for the first
    that systemd would ignore); returns field -> path -> the "MAJ:MIN" it limits."""
    resolved: dict[str, dict[str, str]] = {}
    for field in DEVICE_LIMITS:
        for path in resources.get(field) or {}:
            resolved.setdefault(field, {})[path] = block_device(path, f"resources.{field}")
    return resolved


def device_limit_value(limits: dict[str, Limit]) -> list[list[Any]]:
    """The property's value, [[path, n], ...] ("infinity" becomes UINT64_MAX in `to_dbus`)."""
    return [[path, n] for path, n in limits.items()]


def with_resets(props: list[Property]) -> list[Property]:
    """Properties for SetUnitProperties: each device-limit list preceded by an empty one, which
    clears the unit's entries for that property (systemd merges a non-empty list into them)."""
    out: list[Property] = []
    for prop in props:
        if prop.name in DEVICE_LIMITS.values():
            out.append(Property(prop.name, prop.signature, []))
        out.append(prop)
    return out
