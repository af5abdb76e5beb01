"""IPAM: allocation is pure and never hands out a reserved or taken address; leases under the
network lock stay unique when many processes allocate at once."""

from __future__ import annotations

import ipaddress
import multiprocessing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.errors import Conflict
from berth.network import state
from berth.network.ipam import allocate

subnets = st.builds(
    lambda addr, prefix: ipaddress.IPv4Network(f"{addr}/{prefix}", strict=False),
    st.ip_addresses(v=4),
    st.integers(min_value=24, max_value=30),
)


@given(net=subnets, data=st.data())
def test_allocate_returns_a_free_host_address(net: ipaddress.IPv4Network, data: st.DataObject) -> None:
    hosts = list(net.hosts())
    gateway = data.draw(st.sampled_from(hosts))
    taken = data.draw(st.sets(st.sampled_from([str(h) for h in hosts])))
    free = [h for h in hosts if h != gateway and str(h) not in taken]
    if not free:
        with pytest.raises(Conflict, match="no free address"):
            allocate(net, gateway, taken)
        return
    addr = allocate(net, gateway, taken)
    assert addr == free[0]
    assert addr in net and addr not in (net.network_address, net.broadcast_address, gateway)


@settings(deadline=None)  # a full /24 is 253 allocations: no timed assertion on a shared machine
@given(net=subnets)
def test_successive_allocations_are_distinct_until_the_subnet_is_full(net: ipaddress.IPv4Network) -> None:
    gateway = next(net.hosts())
    taken: set[str] = set()
    for _ in range(net.num_addresses - 3):
        taken.add(str(allocate(net, gateway, taken)))
    assert len(taken) == net.num_addresses - 3
    with pytest.raises(Conflict):
        allocate(net, gateway, taken)


def _lease(args: tuple[str, str]) -> str:
    import os

    data_dir, who = args
    os.environ["BERTH_DATA_DIR"] = data_dir
    net = ipaddress.IPv4Network("10.89.7.0/28")
    with state.locked():
        table = state.get_leases("n")
        addr = str(allocate(net, ipaddress.IPv4Address("10.89.7.1"), table))
        table[addr] = who
        state.put_leases("n", table)
    return addr


def test_concurrent_allocations_under_the_lock_never_collide(tmp_path: Path) -> None:
    with multiprocessing.get_context("fork").Pool(6) as pool:
        got = pool.map(_lease, [(str(tmp_path), f"c{i}") for i in range(13)])
    assert len(set(got)) == 13
    import os

    os.environ["BERTH_DATA_DIR"] = str(tmp_path)
    try:
        assert sorted(state.get_leases("n").values()) == sorted(f"c{i}" for i in range(13))
    finally:
        del os.environ["BERTH_DATA_DIR"]


def test_a_container_mac_follows_its_first_address() -> None:
    """Same address, same MAC (neighbour caches stay right across restarts); locally
    administered unicast; IPv4 first, else the low 32 bits of the IPv6 address."""
    from berth.network.links import container_mac

    assert container_mac(["10.89.0.2"]) == "02:62:0a:59:00:02"
    assert container_mac(["10.89.0.2", "fd00:b::2"]) == container_mac(["10.89.0.2"])
    assert container_mac(["fd00:b::1:2"]) == "02:62:00:01:00:02"
    first = int(container_mac(["192.0.2.9"]).split(":")[0], 16)
    assert first & 0b10 and not first & 0b01  # locally administered, not multicast
