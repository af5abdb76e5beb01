"""Published port specs: parsing, canonical form, clashes. Pure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from berth.errors import InvalidInput
from berth.network.ports import PortMapping, find_clash, parse_port, parse_ports

ports = st.integers(min_value=1, max_value=65535)
ips = st.one_of(st.none(), st.ip_addresses(v=4).filter(lambda a: not a.is_multicast and not a.is_unspecified))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8080:80", PortMapping("tcp", 8080, 80)),
        ("53:53/udp", PortMapping("udp", 53, 53)),
        ("127.0.0.1:8080:80/tcp", PortMapping("tcp", 8080, 80, "127.0.0.1")),
        ("0.0.0.0:80:80", PortMapping("tcp", 80, 80)),
        ({"host_port": 80, "container_port": 8000}, PortMapping("tcp", 80, 8000)),
        ({"host_ip": "10.0.0.1", "host_port": "81", "container_port": 81, "protocol": "udp"},
         PortMapping("udp", 81, 81, "10.0.0.1")),
    ],
)  # fmt: skip
def test_valid_specs(text: object, expected: PortMapping) -> None:
    assert parse_port(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "80", "80:", ":80", "0:80", "80:0", "65536:80", "80:70000", "80:80/sctp", "80:80/TCP",
        "300.1.1.1:80:80", "::1:80:80", "[::1]:80:80", "224.0.0.1:80:80", "a:b", "80:80/", " ",
        "1.2.3:80:80", {"host_port": 80}, {"host_port": "x", "container_port": 1}, 80, None,
    ],
)  # fmt: skip
def test_malformed_specs_are_invalid_input(text: object) -> None:
    with pytest.raises(InvalidInput):
        parse_port(text)


@given(ip=ips, host=ports, ctr=ports, proto=st.sampled_from(["tcp", "udp"]))
def test_the_string_form_round_trips(ip: object, host: int, ctr: int, proto: str) -> None:
    mapping = PortMapping(proto, host, ctr, str(ip) if ip else None)
    assert parse_port(str(mapping)) == mapping
    assert parse_port(mapping.to_json()) == mapping
    assert PortMapping.from_json(mapping.to_json()) == mapping


@given(a=st.tuples(ips, ports), b=st.tuples(ips, ports), proto=st.sampled_from(["tcp", "udp"]))
def test_clashes_is_symmetric_and_means_same_port_on_overlapping_addresses(
    a: tuple[object, int], b: tuple[object, int], proto: str
) -> None:
    pa = PortMapping(proto, a[1], 1, str(a[0]) if a[0] else None)
    pb = PortMapping(proto, b[1], 2, str(b[0]) if b[0] else None)
    assert pa.clashes(pb) == pb.clashes(pa)
    same_addr = pa.host_ip is None or pb.host_ip is None or pa.host_ip == pb.host_ip
    assert pa.clashes(pb) == (a[1] == b[1] and same_addr)
    assert not pa.clashes(PortMapping("udp" if proto == "tcp" else "tcp", pb.host_port, 1, pb.host_ip))


def test_one_container_may_not_publish_one_host_port_twice() -> None:
    with pytest.raises(InvalidInput, match="same host port"):
        parse_ports(["8080:80", "127.0.0.1:8080:81"])
    assert len(parse_ports(["8080:80", "8080:80/udp", "127.0.0.1:8081:80", "10.0.0.1:8081:80"])) == 4


def test_find_clash_ignores_the_owner() -> None:
    held = {"*:80/tcp": (PortMapping("tcp", 80, 80), "a")}
    assert find_clash(PortMapping("tcp", 80, 8080, "127.0.0.1"), held, "b") == "a"
    assert find_clash(PortMapping("tcp", 80, 8080), held, "a") is None
    assert find_clash(PortMapping("tcp", 81, 80), held, "b") is None
