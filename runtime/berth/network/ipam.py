"""Host-local IPAM: addresses of a network's subnet leased to containers, persisted per network.

Leases live in one JSON file per network, written atomically, and change only under the
network lock (`berth.network.state.locked`), so two containers started at the same moment by
two berth processes never get the same address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

from berth.errors import Conflict
from berth.network.model import IPAddress, IPNetwork


def allocate(subnet: IPNetwork, gateway: IPAddress, taken: Collection[str]) -> IPAddress:
    """The lowest free host address: never the network, broadcast (IPv4), subnet-router anycast
    (IPv6) or gateway address. Leases of both families share one table: their texts differ.

    Counts through the subnet as integers (a /64 is never listed), making an address object only
    for candidates: a full /24 is half the time of walking `subnet.hosts()`.
    """
    base, gw = int(subnet.network_address), int(gateway)
    make = ipaddress.IPv4Address if subnet.version == 4 else ipaddress.IPv6Address
    for offset in range(1, subnet.num_addresses - (subnet.version == 4)):
        if base + offset != gw:
            addr = make(base + offset)
            if str(addr) not in taken:
                return addr
    raise Conflict(f"no free address left in {subnet}", subnet=str(subnet))
