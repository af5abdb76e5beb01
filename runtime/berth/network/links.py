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

from berth.errors import BerthError, Unsupported
from berth.network.model import IPAddress, IPInterface, IPNetwork

SYSCTL = Path("/proc/sys/net/ipv4")
SYSCTL6 = Path("/proc/sys/net/ipv6")
IFA_F_NODAD = 0x02  # a static address of ours: usable at once, no duplicate address detection


@contextmanager
def iproute() -> Iterator[Any]:
    from berth.network.pyroute import iproute_class

    with iproute_class()() as ip:
        yield ip


def index(ip: Any, name: str) -> int | None:
    found = ip.link_lookup(ifname=name)
    return int(found[0]) if found else None


def link_names(ip: Any) -> set[str]:
    return {str(link.get_attr("IFLA_IFNAME")) for link in ip.get_links()}


def has_ipv6() -> bool:
    """Whether this host's kernel has IPv6 (off with ipv6.disable=1, or built without it)."""
    return (SYSCTL6 / "conf" / "all").is_dir()


def routed_subnets(ip: Any, exclude_links: Collection[str] = ()) -> list[IPNetwork]:
    """Destinations of the host's routes (main table, both families) but default routes,
    link-local and multicast ones, and those through `exclude_links`."""
    skip = {i for i in (index(ip, n) for n in exclude_links) if i is not None}
    nets: list[IPNetwork] = []
    families = [socket.AF_INET, socket.AF_INET6] if has_ipv6() else [socket.AF_INET]
    for family in families:
        for route in ip.get_routes(family=family, table=254):
            dst = route.get_attr("RTA_DST")
            if dst is None or route["dst_len"] == 0 or route.get_attr("RTA_OIF") in skip:
                continue
            net = ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False)
            if not (net.is_link_local or net.is_multicast):
                nets.append(net)
    return nets


def _add_address(ip: Any, idx: int, address: IPInterface) -> None:
    extra = {"flags": IFA_F_NODAD} if address.version == 6 else {}
    ip.addr("add", index=idx, address=str(address.ip), prefixlen=address.network.prefixlen, **extra)


def ensure_bridge(ip: Any, name: str, gateways: list[IPInterface]) -> bool:
    """Create the bridge with the gateway addresses, up; return whether anything was created."""
    if any(g.version == 6 for g in gateways) and not has_ipv6():
        raise Unsupported("this host's kernel has IPv6 disabled: an IPv6 subnet cannot be set up")
    created = False
    idx = index(ip, name)
    if idx is None:
        ip.link("add", ifname=name, kind="bridge")
        idx = index(ip, name)
        created = True
    if idx is None:
        raise BerthError(f"bridge {name} vanished as it was created")
    if any(g.version == 6 for g in gateways):  # a host may set default/disable_ipv6=1 for new links
        switch = SYSCTL6 / "conf" / name / "disable_ipv6"
        if switch.exists() and switch.read_text().strip() != "0":
            switch.write_text("0\n")
    _pin_mac(ip, name, idx)
    have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ip.get_addr(index=idx)}
    for gateway in gateways:
        if (str(gateway.ip), gateway.network.prefixlen) not in have:
            _add_address(ip, idx, gateway)
            created = True
    ip.link("set", index=idx, state="up")
    return created


NET_ADDR_SET = "3"  # /sys/class/net/*/addr_assign_type: the address was set by userspace


def _pin_mac(ip: Any, name: str, idx: int) -> None:
    """Keep the bridge's MAC address what it is now, whatever ports come and go.

    A Linux bridge whose address nobody set takes the lowest MAC of its ports, so a container's
    veth joining or leaving can change it, and every container that cached the gateway's MAC
    then sends its answers to an address nobody has until its ARP entry expires (seconds of
    lost replies). Setting the address, even to its present value, makes it fixed (Docker pins
    its bridges the same way).
    """
    try:
        if Path(f"/sys/class/net/{name}/addr_assign_type").read_text().strip() == NET_ADDR_SET:
            return
    except OSError:
        pass  # no sysfs of this netns: pin it all the same
    link = ip.get_links(idx)[0]
    ip.link("set", index=idx, address=link.get_attr("IFLA_ADDRESS"))


def container_mac(addresses: list[str]) -> str:
    """The MAC address of a container's interface, derived from its first address.

    The same address always comes with the same MAC: a container restarted, or a revision
    started again, on the address it had keeps being reachable at once, where a new random MAC
    left the host and the other containers sending to the old one until their neighbour
    entries expired. 02:62 is locally administered unicast ("b" for berth); the last four
    bytes are the IPv4 address (for an IPv6-only interface, the last four of the IPv6 one),
    unique within the bridge's subnet. Docker derives its MACs from the IPv4 address the same way.
    """
    return address_mac(0x62, addresses[0])


def address_mac(kind: int, address: str) -> str:
    """02:`kind` (locally administered unicast) and the last four bytes of `address`."""
    last4 = ipaddress.ip_interface(address).ip.packed[-4:]
    return ":".join(f"{b:02x}" for b in (0x02, kind, *last4))


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
    addresses: list[IPInterface],
    gateways: list[IPAddress],
    mac: str | None = None,
) -> None:
    """Inside the container's netns: rename to ethN, its MAC, addresses, up; loopback up; a
    default route through each gateway (one per family, on the first interface only)."""
    idx = index(ip, temp_name)
    if idx is None:
        raise BerthError(f"veth end {temp_name} is not in the container's network namespace")
    ip.link("set", index=idx, ifname=ifname)
    if mac:
        ip.link("set", index=idx, address=mac)
    for address in addresses:
        _add_address(ip, idx, address)
    ip.link("set", index=idx, state="up")
    lo = index(ip, "lo")
    if lo is not None:
        ip.link("set", index=lo, state="up")
    for gateway in gateways:
        family = socket.AF_INET6 if gateway.version == 6 else socket.AF_INET
        ip.route("add", family=family, gateway=str(gateway), oif=idx)


def enable_forwarding(bridge: str, ipv6: bool = False) -> None:
    """Routing for containers, and 127.0.0.1 -> container for published ports (route_localnet).

    Per network namespace: they change the host the runtime manages, nothing else. IPv6
    forwarding is turned on only for a network with an IPv6 subnet: on a host that takes its
    own IPv6 address from router advertisements, forwarding stops accepting them unless the
    uplink has accept_ra=2 (docs/networking.md).
    """
    (SYSCTL / "ip_forward").write_text("1\n")
    path = SYSCTL / "conf" / bridge / "route_localnet"
    if path.exists():
        path.write_text("1\n")
    if ipv6:
        (SYSCTL6 / "conf" / "all" / "forwarding").write_text("1\n")
