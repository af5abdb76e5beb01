"""Property: under any sequence of allocations and releases, IPAM never hands out an address
twice, nor the network, broadcast or gateway address, nor one outside the subnet; and it only
says the subnet is full when it is."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.errors import Conflict
from berth.network.ipam import allocate

subnets = st.builds(
    lambda addr, prefix: ipaddress.IPv4Network(f"{addr}/{prefix}", strict=False),
    st.ip_addresses(v=4),
    st.integers(min_value=22, max_value=30),
)
# An operation: allocate (None) or release the lease at this index (modulo the number held).
ops = st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=1 << 16)), min_size=1, max_size=120)


@settings(max_examples=200, deadline=None)
@given(net=subnets, gateway_index=st.integers(min_value=0), sequence=ops)
def test_random_allocate_release_sequences_never_collide(
    pytestconfig: pytest.Config, net: ipaddress.IPv4Network, gateway_index: int, sequence: list[int | None]
) -> None:
    rec = getattr(pytestconfig, "berth_reliability", None)
    if rec is not None:
        rec.inputs(len(sequence), "IPAM operations (hypothesis)")
    hosts = list(net.hosts())
    gateway = hosts[gateway_index % len(hosts)]
    reserved = {net.network_address, net.broadcast_address, gateway}
    capacity = len(hosts) - 1
    leases: list[str] = []
    for op in sequence:
        if op is None or not leases:
            if len(leases) == capacity:
                with pytest.raises(Conflict):
                    allocate(net, gateway, set(leases))
                continue
            addr = allocate(net, gateway, set(leases))
            assert addr in net and addr not in reserved, addr
            assert str(addr) not in leases, f"{addr} handed out twice"
            leases.append(str(addr))
        else:
            leases.pop(op % len(leases))
        assert len(set(leases)) == len(leases)
