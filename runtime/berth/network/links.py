"""The host side of networking through pyroute2's IPRoute: bridges, veth pairs, routes, sysctls.

Only the API common to pyroute2 0.7 (Debian 12) and 0.9 (PyPI) is used: `link_lookup`,
`link("add"|"set"|"del")`, `addr("add")`, `route("add")`, `get_routes`, `get_links`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from berth.errors import BerthError

SYSCTL = Path("/proc/sys/net/ipv4")


@contextmanager
def iproute() -> Iterator[Any]:
    from pyroute2 import IPRoute

    with IPRoute() as ip:
        yield ip


def index(ip: Any, name: str) -> int | None:
    found = ip.link_lookup(ifname=name)
    return int(found[0]) if found else None


def link_names(ip: Any) -> set[str]:
    return {str(link.get_attr("IFLA_IFNAME")) for link in ip.get_links()}


def routed_subnets(ip: Any, exclude_links: Collection[str] = ()) -> list[ipaddress.IPv4Network]:
    """Destinations of the host's IPv4 routes (main table) but the default route and `exclude_links`."""
    skip = {i for i in (index(ip, n) for n in exclude_links) if i is not None}
    nets = []
    for route in ip.get_routes(family=socket.AF_INET, table=254):
        dst = route.get_attr("RTA_DST")
        if dst is None or route["dst_len"] == 0 or route.get_attr("RTA_OIF") in skip:
            continue
        nets.append(ipaddress.IPv4Network(f"{dst}/{route['dst_len']}", strict=False))
    return nets


def ensure_bridge(ip: Any, name: str, gateway: ipaddress.IPv4Interface) -> bool:
    """Create the bridge with the gateway address, up; return whether anything was created."""
    created = False
    idx = index(ip, name)
    if idx is None:
        ip.link("add", ifname=name, kind="bridge")
        idx = index(ip, name)
        created = True
    have = {
        (a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ip.get_addr(family=socket.AF_INET, index=idx)
    }
    if (str(gateway.ip), gateway.network.prefixlen) not in have:
        ip.addr("add", index=idx, address=str(gateway.ip), prefixlen=gateway.network.prefixlen)
        created = True
    ip.link("set", index=idx, state="up")
    return created


def delete_link(ip: Any, name: str) -> bool:
    idx = index(ip, name)
    if idx is None:
        return False
    try:
        ip.link("del", index=idx)
    except Exception as exc:  # NetlinkError: gone in between (ENODEV) is fine
        if getattr(exc, "code", None) != 19:
            raise
        return False
    return True


def create_veth(ip: Any, host_end: str, peer: str, bridge: str) -> None:
    """A veth pair, the host end enslaved to `bridge` and up; the peer waits to be moved."""
    br = index(ip, bridge)
    if br is None:
        raise BerthError(f"bridge {bridge} vanished")
    ip.link("add", ifname=host_end, kind="veth", peer=peer)
    ip.link("set", index=index(ip, host_end), master=br, state="up")


def move_to_netns(ip: Any, name: str, netns_fd: int) -> None:
    idx = index(ip, name)
    if idx is None:
        raise BerthError(f"veth end {name} vanished before it could be moved")
    ip.link("set", index=idx, net_ns_fd=netns_fd)


def configure_inside(
    ip: Any,
    temp_name: str,
    ifname: str,
    address: ipaddress.IPv4Interface,
    gateway: ipaddress.IPv4Address | None,
) -> None:
    """Inside the container's netns: rename to ethN, address, up; loopback up; default route."""
    idx = index(ip, temp_name)
    if idx is None:
        raise BerthError(f"veth end {temp_name} is not in the container's network namespace")
    ip.link("set", index=idx, ifname=ifname)
    ip.addr("add", index=idx, address=str(address.ip), prefixlen=address.network.prefixlen)
    ip.link("set", index=idx, state="up")
    lo = index(ip, "lo")
    if lo is not None:
        ip.link("set", index=lo, state="up")
    if gateway is not None:
        ip.route("add", gateway=str(gateway), oif=idx)


def enable_forwarding(bridge: str) -> None:
    """Routing for containers, and 127.0.0.1 -> container for published ports (route_localnet).

    Both are per network namespace: they change the host the runtime manages, nothing else.
    """
    (SYSCTL / "ip_forward").write_text("1\n")
    path = SYSCTL / "conf" / bridge / "route_localnet"
    if path.exists():
        path.write_text("1\n")
