"""IPv6 and dual-stack networks, and what a container's unit does when systemd restarts it. Pure."""

from __future__ import annotations

import ipaddress

import pytest

from berth.errors import Conflict, InvalidInput
from berth.network.containers import restart_follows
from berth.network.hosts import render as render_hosts
from berth.network.ipam import allocate
from berth.network.manager import desired_network
from berth.network.model import Network, make_network, parse_subnet
from berth.network.nft import render
from berth.network.plan import HostView, plan_create, plan_network
from berth.network.ports import PortMapping, parse_port
from berth.network.request import parse_request

DUAL = make_network("dual", parse_subnet("10.89.1.0/24"), "berth1", subnet6=parse_subnet("fd00:b::/64"))
ONLY6 = make_network("only6", parse_subnet("fd00:c::/64"), "berth2")
LAB6 = ipaddress.IPv6Network("fd00:1ab::/64")


def view(**kw: object) -> HostView:
    base: dict[str, object] = {"networks": {"dual": DUAL}, "links": {"lo", "berth1"}, "routes": [LAB6]}
    base.update(kw)
    return HostView(**base)  # type: ignore[arg-type]


def test_a_dual_stack_network_has_a_gateway_per_family_and_round_trips() -> None:
    assert (str(DUAL.gateway), str(DUAL.gateway6)) == ("10.89.1.1", "fd00:b::1")
    assert [str(i) for i in DUAL.gateway_interfaces] == ["10.89.1.1/24", "fd00:b::1/64"]
    assert Network.from_json(DUAL.to_json()) == DUAL
    assert (ONLY6.subnet, ONLY6.gateway, str(ONLY6.subnet6)) == (None, None, "fd00:c::/64")
    assert Network.from_json(ONLY6.to_json()) == ONLY6
    v4 = make_network("v4", parse_subnet("10.89.2.0/24"), "berth3")
    assert "subnet6" not in v4.to_json()  # IPv4-only records keep their old shape


@pytest.mark.parametrize(
    ("subnet", "words"),
    [
        ("fe80::/64", "link-local"),
        ("ff02::/64", "multicast"),
        ("::1/128", "between /48 and /120"),
        ("fd00::/32", "between /48 and /120"),
        ("fd00::1/64", "host bits set"),
        ("::ffff:0:0/104", "IPv4-mapped"),
    ],
)
def test_bad_ipv6_subnets(subnet: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_subnet(subnet)


def test_gateways_are_matched_to_subnets_by_family() -> None:
    net = make_network(
        "n", parse_subnet("fd00:b::/64"), "b", gateway="fd00:b::fe", subnet6=parse_subnet("10.89.1.0/24")
    )
    assert (str(net.gateway), str(net.gateway6)) == ("10.89.1.1", "fd00:b::fe")
    with pytest.raises(InvalidInput, match="has no IPv4 subnet"):
        make_network("n", parse_subnet("fd00:b::/64"), "b", gateway="10.0.0.1")
    with pytest.raises(InvalidInput, match="one subnet per IP version"):
        make_network("n", parse_subnet("fd00:b::/64"), "b", subnet6=parse_subnet("fd00:c::/64"))
    with pytest.raises(InvalidInput, match="not a host address"):
        make_network("n", parse_subnet("fd00:b::/64"), "b", gateway="fd00:b::")


def test_ipv6_subnets_are_checked_against_networks_and_routes_of_their_family_only() -> None:
    clash = make_network("x", parse_subnet("10.89.9.0/24"), "bx", subnet6=parse_subnet("fd00:b::/48"))
    with pytest.raises(Conflict, match="fd00:b::/48 overlaps network dual"):
        plan_create(clash, view())
    with pytest.raises(Conflict, match="collides with a route"):
        plan_create(make_network("x", parse_subnet("fd00:1ab::/64"), "bx"), view())
    # 10.89.9.0/24 and fd00:d::/64 overlap nothing, whatever the other family holds
    ok = make_network("x", parse_subnet("10.89.9.0/24"), "bx", subnet6=parse_subnet("fd00:d::/64"))
    assert [a.kind for a in plan_create(ok, view())] == ["create-network"]


def test_desired_network_keeps_the_family_not_given_and_v6_alone_makes_v6_only() -> None:
    assert desired_network("only", "fd00:e::/64", None, None, True, view()).subnet is None
    added = desired_network("dual", None, None, None, True, view(), subnet6="fd00:b::/64")
    assert added == DUAL
    v4 = make_network("v4", parse_subnet("10.89.2.0/24"), "berth3")
    grown = desired_network("v4", None, None, None, True, view(networks={"v4": v4}), "fd00:f::/64")
    assert (str(grown.subnet), str(grown.subnet6)) == ("10.89.2.0/24", "fd00:f::/64")
    # adding IPv6 to a network in use re-creates it, which is refused
    in_use = view(networks={"v4": v4}, users={"v4": ["web"]})
    with pytest.raises(Conflict, match="subnet6"):
        plan_network("v4", grown, in_use)


def test_the_request_takes_subnet6_and_refuses_a_family_in_the_wrong_field() -> None:
    req = parse_request({"name": "n", "subnet6": "fd00:b::/64", "gateway6": "fd00:b::1"})
    assert (req.subnet6, req.gateway6) == ("fd00:b::/64", "fd00:b::1")
    with pytest.raises(InvalidInput, match="subnet6 takes an IPv6 value"):
        parse_request({"name": "n", "subnet6": "10.89.1.0/24"})
    with pytest.raises(InvalidInput, match="subnet takes an IPv4 value"):
        parse_request({"name": "n", "subnet": "fd00:b::/64"})


def test_ipam_leases_ipv6_addresses_from_the_bottom_never_the_anycast_or_gateway() -> None:
    net, gw = ipaddress.IPv6Network("fd00:b::/120"), ipaddress.IPv6Address("fd00:b::1")
    assert str(allocate(net, gw, {"10.89.1.2"})) == "fd00:b::2"
    assert str(allocate(net, gw, {"fd00:b::2"})) == "fd00:b::3"
    taken = {f"fd00:b::{i:x}" for i in range(2, 256)}
    with pytest.raises(Conflict, match="no free address"):
        allocate(net, gw, taken)
    assert str(allocate(ipaddress.IPv6Network("fd00:b::/64"), gw, set())) == "fd00:b::2"  # no listing


def test_nft_has_an_ip6_table_for_ipv6_networks_and_ports_in_the_same_script() -> None:
    port = PortMapping("tcp", 8080, 80)
    script = render([DUAL], [(port, "10.89.1.2"), (port, "fd00:b::2")], ipv6=True)
    v4, v6 = script.split("table ip6 berth {}\n")
    assert 'tcp dport 8080 dnat to 10.89.1.2:80 comment "*:8080/tcp"' in v4 and "fd00" not in v4
    assert 'tcp dport 8080 dnat to [fd00:b::2]:80 comment "*:8080/tcp"' in v6
    assert "ip6 saddr fd00:b::/64 ip6 daddr != fd00:b::/64 masquerade" in v6
    assert 'oifname "berth1" ip6 saddr fd00:b::/64 ct status dnat masquerade' in v6
    assert "127.0.0.0/8" not in v6  # no route_localnet in IPv6
    # an address-bound port goes to its family's table only
    bound = PortMapping("tcp", 8081, 80, "fd00:1ab::1")
    both = render([DUAL], [(bound, "10.89.1.2"), (bound, "fd00:b::2")], ipv6=True)
    assert "8081" not in both.split("table ip6 berth {}\n")[0]
    assert "ip6 daddr fd00:1ab::1 tcp dport 8081 dnat to [fd00:b::2]:80" in both
    # no IPv6 left: the ip6 table is deleted in the same transaction; a host without IPv6 never sees it
    assert render([], [], ipv6=True).endswith("table ip6 berth {}\ndelete table ip6 berth\n")
    assert "ip6" not in render([DUAL], [], ipv6=False)


def test_ipv6_host_addresses_of_ports_are_bracketed_and_loopback_is_refused() -> None:
    port = parse_port("[fd00:1ab::1]:8080:80")
    assert (str(port), port.key, port.host_ip) == (
        "[fd00:1ab::1]:8080:80/tcp",
        "[fd00:1ab::1]:8080/tcp",
        "fd00:1ab::1",
    )
    assert parse_port(port.to_json()) == port
    with pytest.raises(InvalidInput, match="cannot be forwarded"):
        parse_port("[::1]:8080:80")


def test_etc_hosts_lists_both_families() -> None:
    text = render_hosts(
        "web", "web", ["10.89.1.2", "fd00:b::2"], [("fd00:b::3", "db", "db")], ["10.89.1.1", "fd00:b::1"]
    )
    lines = text.splitlines()
    assert {"10.89.1.2\tweb", "fd00:b::2\tweb", "fd00:b::3\tdb", "fd00:b::1\thost.berth.internal"} <= set(
        lines
    )


@pytest.mark.parametrize(
    ("policy", "result", "restarts"),
    [
        ("always", "success", True),
        ("always", "signal", True),
        ("on-failure", "exit-code", True),
        ("on-failure", "signal", True),
        ("on-failure", "oom-kill", True),
        ("on-failure", "success", False),
        ("no", "signal", False),
    ],
)
def test_a_stop_parks_the_network_only_when_systemd_restarts_the_container(
    policy: str, result: str, restarts: bool
) -> None:
    assert restart_follows(policy, result) is restarts
