"""Host-local IPAM: addresses of a network's subnet leased to containers, persisted per network.

Leases live in one JSON file per network, written atomically, and change only under the
network lock (`berth.network.state.locked`), so two containers started at the same moment by
two berth processes never get the same address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

from berth.errors import Conflict


def allocate(
    subnet: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address, taken: Collection[str]
) -> ipaddress.IPv4Address:
    """The lowest free host address: never the network, broadcast or gateway address."""
    for addr in subnet.hosts():
        if addr != gateway and str(addr) not in taken:
            return addr
    raise Conflict(f"no free address left in {subnet}", subnet=str(subnet))
