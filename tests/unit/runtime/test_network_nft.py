"""Berth's nftables table, rendered from state. Pure: nothing is loaded into a kernel here."""

from __future__ import annotations

import ipaddress
import re

from hypothesis import given
from hypothesis import strategies as st

from berth.network.model import Network
from berth.network.nft import render
from berth.network.ports import PortMapping

NET = Network("web", "berth1", ipaddress.IPv4Network("10.89.1.0/24"), ipaddress.IPv4Address("10.89.1.1"))
PRIVATE = Network(
    "db",
    "berth2",
    ipaddress.IPv4Network("10.89.2.0/24"),
    ipaddress.IPv4Address("10.89.2.1"),
    masquerade=False,
)


def test_nothing_to_hold_deletes_the_table_and_only_it() -> None:
    script = render([], [])
    assert script == "table ip berth {}\ndelete table ip berth\n"


def test_one_transaction_that_touches_only_berths_table() -> None:
    script = render([NET], [(PortMapping("tcp", 8080, 80), "10.89.1.2")])
    statements = [line for line in script.splitlines() if not line.startswith("\t") and line != "}"]
    assert statements == ["table ip berth {}", "flush table ip berth", "table ip berth {"]
    assert "flush ruleset" not in script
    assert set(re.findall(r"\btable\s+(\S+ \S+)", script)) == {"ip berth"}


def test_ports_become_dnat_rules_for_local_addresses_incoming_and_from_the_host() -> None:
    script = render(
        [NET],
        [
            (PortMapping("tcp", 8080, 80), "10.89.1.2"),
            (PortMapping("udp", 53, 5353, "10.251.0.11"), "10.89.1.3"),
        ],
    )
    assert "type nat hook prerouting priority dstnat" in script
    assert "type nat hook output priority -100" in script
    assert script.count("fib daddr type local jump published") == 2
    assert 'tcp dport 8080 dnat to 10.89.1.2:80 comment "*:8080/tcp"' in script
    assert "ip daddr 10.251.0.11 udp dport 53 dnat to 10.89.1.3:5353" in script
    # an address-bound rule comes before wildcard rules
    assert script.index("udp dport 53") < script.index("tcp dport 8080")


def test_masquerade_per_network_and_hairpin_and_localhost() -> None:
    script = render([NET, PRIVATE], [])
    assert "ip saddr 10.89.1.0/24 ip daddr != 10.89.1.0/24 masquerade" in script
    assert "ip saddr 10.89.2.0/24 ip daddr != 10.89.2.0/24 masquerade" not in script
    for br, sub in (("berth1", "10.89.1.0/24"), ("berth2", "10.89.2.0/24")):
        assert f'oifname "{br}" ip saddr 127.0.0.0/8 masquerade' in script
        assert f'oifname "{br}" ip saddr {sub} ct status dnat masquerade' in script


@given(
    st.dictionaries(
        st.tuples(st.sampled_from(["tcp", "udp"]), st.integers(1, 65535)),
        st.tuples(st.integers(1, 65535), st.integers(2, 254)),
        max_size=30,
    )
)
def test_every_published_port_has_exactly_one_rule(table: dict[tuple[str, int], tuple[int, int]]) -> None:
    published = [(PortMapping(p, hp, cp), f"10.89.1.{host}") for (p, hp), (cp, host) in table.items()]
    script = render([NET], published)
    for port, addr in published:
        rule = f"{port.protocol} dport {port.host_port} dnat to {addr}:{port.container_port} "
        assert script.count(rule) == 1
    assert script.count(" dnat to ") == len(published)
    assert render([NET], list(reversed(published))) == script  # order of state does not matter
