"""A network: a name, a Linux bridge, an IPv4 and/or an IPv6 subnet, each with its gateway.

Dual stack is one bridge holding both gateways; an IPv6-only network has no IPv4 subnet.
Validation is pure.
"""

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
# IPv6: /64 is what SLAAC and most tools expect; /120 leaves 255 addresses to lease.
V6_PREFIXES = (48, 120)
BRIDGE_MODE = "bridge"  # the spec's `network: bridge`: the default network

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
# IFNAMSIZ is 16 with the NUL; the kernel refuses '/', ':' and whitespace, '.' and '..'.
_IFNAME = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,14}$")
RESERVED_NAMES = frozenset({"none", "host", BRIDGE_MODE})

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True)
class Network:
    name: str
    bridge: str
    subnet: ipaddress.IPv4Network | None  # None: an IPv6-only network
    gateway: ipaddress.IPv4Address | None
    masquerade: bool = True
    subnet6: ipaddress.IPv6Network | None = None
    gateway6: ipaddress.IPv6Address | None = None

    @property
    def subnets(self) -> list[IPNetwork]:
        return [s for s in (self.subnet, self.subnet6) if s is not None]

    @property
    def gateways(self) -> list[tuple[IPNetwork, IPAddress]]:
        """(subnet, gateway) per family, IPv4 first."""
        out: list[tuple[IPNetwork, IPAddress]] = []
        if self.subnet is not None and self.gateway is not None:
            out.append((self.subnet, self.gateway))
        if self.subnet6 is not None and self.gateway6 is not None:
            out.append((self.subnet6, self.gateway6))
        return out

    @property
    def gateway_interfaces(self) -> list[IPInterface]:
        return [ipaddress.ip_interface(f"{gw}/{sub.prefixlen}") for sub, gw in self.gateways]

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "bridge": self.bridge,
            "subnet": str(self.subnet) if self.subnet else None,
            "gateway": str(self.gateway) if self.gateway else None,
            "masquerade": self.masquerade,
        }
        if self.subnet6 is not None:  # IPv4-only networks keep the document they always had
            doc["subnet6"], doc["gateway6"] = str(self.subnet6), str(self.gateway6)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Network:
        return cls(
            name=doc["name"],
            bridge=doc["bridge"],
            subnet=ipaddress.IPv4Network(doc["subnet"]) if doc.get("subnet") else None,
            gateway=ipaddress.IPv4Address(doc["gateway"]) if doc.get("gateway") else None,
            masquerade=bool(doc.get("masquerade", True)),
            subnet6=ipaddress.IPv6Network(doc["subnet6"]) if doc.get("subnet6") else None,
            gateway6=ipaddress.IPv6Address(doc["gateway6"]) if doc.get("gateway6") else None,
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


def parse_subnet(text: str) -> IPNetwork:
    """A CIDR such as 10.89.3.0/24 or fd00:b::/64; host bits set (10.89.3.1/24) are refused,
    not silently cleared."""
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise InvalidInput(f"subnet {text!r} is not a valid CIDR network: {exc}") from None
    if isinstance(net, ipaddress.IPv6Network):
        return _check_v6(text, net)
    if net.prefixlen > 30 or net.prefixlen < 8:
        raise InvalidInput(f"subnet {text!r}: the prefix length must be between /8 and /30")
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified:
        raise InvalidInput(f"subnet {text!r} is a loopback, multicast or link-local range")
    return net


def _check_v6(text: str, net: ipaddress.IPv6Network) -> ipaddress.IPv6Network:
    low, high = V6_PREFIXES
    if not low <= net.prefixlen <= high:
        raise InvalidInput(f"subnet {text!r}: an IPv6 prefix length must be between /{low} and /{high}")
    special = (
        net.is_loopback
        or net.is_multicast
        or net.is_link_local
        or net.is_unspecified
        or net.is_site_local
        or net.subnet_of(ipaddress.IPv6Network("::ffff:0:0/96"))
    )
    if special:
        raise InvalidInput(
            f"subnet {text!r} is a loopback, multicast, link-local or IPv4-mapped range: "
            "use a unique local (fd00::/8) or a routed global prefix"
        )
    return net


def parse_address(text: str, what: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidInput(f"{what} {text!r} is not an IP address") from None


def _gateway(subnet: IPNetwork, text: str | None) -> IPAddress:
    """The gateway on `subnet`: given (checked), or the subnet's first host address."""
    if text is None:
        first = next(iter(subnet.hosts()))
        assert isinstance(first, ipaddress.IPv4Address | ipaddress.IPv6Address)
        return first
    gw = parse_address(text, "gateway")
    if gw.version != subnet.version:
        raise InvalidInput(f"gateway {gw} is not an IPv{subnet.version} address, as subnet {subnet} is")
    low, high = int(subnet.network_address), int(subnet.broadcast_address)
    # IPv4: not the network or broadcast address; IPv6: not the subnet-router anycast address
    if not low < int(gw) < high + (subnet.version == 6):
        raise InvalidInput(f"gateway {gw} is not a host address of subnet {subnet}")
    return gw


def split_subnets(
    subnets: list[IPNetwork],
) -> tuple[ipaddress.IPv4Network | None, ipaddress.IPv6Network | None]:
    """The IPv4 and the IPv6 subnet of a list that holds at most one of each."""
    v4 = [s for s in subnets if isinstance(s, ipaddress.IPv4Network)]
    v6 = [s for s in subnets if isinstance(s, ipaddress.IPv6Network)]
    for same in (v4, v6):
        if len(same) > 1:
            raise InvalidInput(f"subnets {same[0]} and {same[1]}: one subnet per IP version")
    return (v4[0] if v4 else None), (v6[0] if v6 else None)


def make_network(
    name: str,
    subnet: IPNetwork | None,
    bridge: str,
    gateway: str | None = None,
    masquerade: bool = True,
    subnet6: IPNetwork | None = None,
    gateway6: str | None = None,
) -> Network:
    """A validated network; each gateway defaults to its subnet's first address.

    `subnet` may be of either family (an IPv6 one alone makes an IPv6-only network); the
    gateways are matched to the subnets by family.
    """
    validate_network_name(name)
    validate_bridge_name(bridge)
    v4: ipaddress.IPv4Network | None = None
    v6: ipaddress.IPv6Network | None = None
    for net in (subnet, subnet6):
        if isinstance(net, ipaddress.IPv4Network):
            if v4 is not None:
                raise InvalidInput(f"subnets {v4} and {net}: one subnet per IP version")
            v4 = net
        elif isinstance(net, ipaddress.IPv6Network):
            if v6 is not None:
                raise InvalidInput(f"subnets {v6} and {net}: one subnet per IP version")
            v6 = net
    if v4 is None and v6 is None:
        raise InvalidInput(f"network {name}: give an IPv4 or an IPv6 subnet (or both)")
    given: dict[int, str] = {}
    for text in (gateway, gateway6):
        if text is None:
            continue
        version = parse_address(text, "gateway").version
        if (v4 if version == 4 else v6) is None:
            raise InvalidInput(f"gateway {text}: network {name} has no IPv{version} subnet")
        if version in given:
            raise InvalidInput(f"gateways {given[version]} and {text}: one gateway per IP version")
        given[version] = text
    gw4 = _gateway(v4, given.get(4)) if v4 is not None else None
    gw6 = _gateway(v6, given.get(6)) if v6 is not None else None
    assert gw4 is None or isinstance(gw4, ipaddress.IPv4Address)
    assert gw6 is None or isinstance(gw6, ipaddress.IPv6Address)
    return Network(name, bridge, v4, gw4, masquerade, v6, gw6)


def overlapping(subnet: IPNetwork, others: list[IPNetwork]) -> list[str]:
    return [str(o) for o in others if _overlaps(subnet, o)]


def _overlaps(a: IPNetwork, b: IPNetwork) -> bool:
    if isinstance(a, ipaddress.IPv4Network) and isinstance(b, ipaddress.IPv4Network):
        return a.overlaps(b)
    if isinstance(a, ipaddress.IPv6Network) and isinstance(b, ipaddress.IPv6Network):
        return a.overlaps(b)
    return False


def free_subnet(taken: list[IPNetwork]) -> ipaddress.IPv4Network:
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
