"""A network: a name, a Linux bridge, an IPv4 subnet and its gateway. Validation is pure."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from berth.errors import InvalidInput

DEFAULT_NETWORK = "berth"
DEFAULT_BRIDGE = "berth0"
# podman takes 10.88.0.0/16 and the lab 10.251.0.0/16; Berth's networks come from 10.89.0.0/16.
DEFAULT_POOL = ipaddress.IPv4Network("10.89.0.0/16")
DEFAULT_PREFIX = 24
BRIDGE_MODE = "bridge"  # the spec's `network: bridge`: the default network

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
# IFNAMSIZ is 16 with the NUL; the kernel refuses '/', ':' and whitespace, '.' and '..'.
_IFNAME = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,14}$")
RESERVED_NAMES = frozenset({"none", "host", BRIDGE_MODE})


@dataclass(frozen=True)
class Network:
    name: str
    bridge: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    masquerade: bool = True

    @property
    def gateway_interface(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{self.gateway}/{self.subnet.prefixlen}")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bridge": self.bridge,
            "subnet": str(self.subnet),
            "gateway": str(self.gateway),
            "masquerade": self.masquerade,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Network:
        return cls(
            name=doc["name"],
            bridge=doc["bridge"],
            subnet=ipaddress.IPv4Network(doc["subnet"]),
            gateway=ipaddress.IPv4Address(doc["gateway"]),
            masquerade=bool(doc.get("masquerade", True)),
        )


def validate_network_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"invalid network name {name!r}: use 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    if name in RESERVED_NAMES:
        raise InvalidInput(f"{name!r} is a network mode, not a network name: choose another name")
    return name


def validate_bridge_name(name: str) -> str:
    if not _IFNAME.match(name) or name in (".", ".."):
        raise InvalidInput(
            f"invalid bridge name {name!r}: 1-15 letters, digits, '_', '.' or '-' (a Linux interface name)"
        )
    return name


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """A CIDR such as 10.89.3.0/24; host bits set (10.89.3.1/24) are refused, not silently cleared."""
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise InvalidInput(f"subnet {text!r} is not a valid CIDR network: {exc}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise InvalidInput(f"subnet {text!r}: only IPv4 subnets are supported for now")
    if net.prefixlen > 30 or net.prefixlen < 8:
        raise InvalidInput(f"subnet {text!r}: the prefix length must be between /8 and /30")
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified:
        raise InvalidInput(f"subnet {text!r} is a loopback, multicast or link-local range")
    return net


def parse_address(text: str, what: str) -> ipaddress.IPv4Address:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidInput(f"{what} {text!r} is not an IP address") from None
    if not isinstance(addr, ipaddress.IPv4Address):
        raise InvalidInput(f"{what} {text!r}: only IPv4 addresses are supported for now")
    return addr


def make_network(
    name: str,
    subnet: ipaddress.IPv4Network,
    bridge: str,
    gateway: str | None = None,
    masquerade: bool = True,
) -> Network:
    """A validated network; the gateway defaults to the subnet's first address."""
    validate_network_name(name)
    validate_bridge_name(bridge)
    gw = parse_address(gateway, "gateway") if gateway else next(subnet.hosts())
    if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
        raise InvalidInput(f"gateway {gw} is not a host address of subnet {subnet}")
    return Network(name, bridge, subnet, gw, masquerade)


def overlapping(subnet: ipaddress.IPv4Network, others: list[ipaddress.IPv4Network]) -> list[str]:
    return [str(o) for o in others if subnet.overlaps(o)]


def free_subnet(taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The first /24 of Berth's pool that overlaps nothing in `taken` (networks and host routes)."""
    for candidate in DEFAULT_POOL.subnets(new_prefix=DEFAULT_PREFIX):
        if not overlapping(candidate, taken):
            return candidate
    raise InvalidInput(f"every /{DEFAULT_PREFIX} of {DEFAULT_POOL} is in use: give --subnet")


def free_bridge_name(taken: set[str]) -> str:
    for i in range(1, 10000):
        name = f"berth{i}"
        if name not in taken:
            return name
    raise InvalidInput("no free bridge name berthN: give --bridge")
