"""Network create/remove plans and spec fields: every refusal before anything changes. Pure."""

from __future__ import annotations

import ipaddress

import pytest

from berth.containers.spec import ContainerSpec, parse_spec
from berth.errors import Conflict, InvalidInput
from berth.network.model import free_subnet, make_network, parse_subnet, validate_bridge_name
from berth.network.plan import HostView, plan_create, plan_remove

LAB = ipaddress.IPv4Network("10.251.0.0/24")
A = make_network("a", ipaddress.IPv4Network("10.89.0.0/24"), "berth0")


def view(**kw: object) -> HostView:
    base: dict[str, object] = {"networks": {"a": A}, "links": {"lo", "eth0", "berth0"}, "routes": [LAB]}
    base.update(kw)
    return HostView(**base)  # type: ignore[arg-type]


def test_create_plans_one_action_and_is_idempotent() -> None:
    b = make_network("b", parse_subnet("10.89.1.0/24"), "berth1")
    assert [a.kind for a in plan_create(b, view())] == ["create-network"]
    assert plan_create(A, view()) == []


@pytest.mark.parametrize(
    ("net", "match"),
    [
        (make_network("b", parse_subnet("10.89.0.128/25"), "berth1"), "overlaps network a"),
        (make_network("b", parse_subnet("10.251.0.0/16"), "berth1"), "collides with a route"),
        (make_network("b", parse_subnet("10.89.5.0/24"), "eth0"), "bridge name eth0 is taken"),
        (make_network("b", parse_subnet("10.89.5.0/24"), "berth0"), "bridge name berth0 is taken"),
        (make_network("a", parse_subnet("10.89.5.0/24"), "berth0"), "exists with other settings"),
    ],
)
def test_create_conflicts(net: object, match: str) -> None:
    with pytest.raises(Conflict, match=match):
        plan_create(net, view())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "subnet",
    ["10.89.0.1/24", "10.89.0.0/33", "fe80::/64", "127.0.0.0/8", "nonsense", "10.0.0.0/31", "10.0.0.0/4"],
)
def test_bad_subnets(subnet: str) -> None:
    with pytest.raises(InvalidInput):
        parse_subnet(subnet)


@pytest.mark.parametrize("name", ["", "a" * 16, "a/b", "a b", "-x", ".", ".."])
def test_bad_bridge_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_bridge_name(name)


def test_bad_gateway_and_reserved_names() -> None:
    with pytest.raises(InvalidInput, match="not a host address"):
        make_network("b", parse_subnet("10.89.1.0/24"), "berth1", gateway="10.89.2.1")
    with pytest.raises(InvalidInput, match="not a host address"):
        make_network("b", parse_subnet("10.89.1.0/24"), "berth1", gateway="10.89.1.255")
    for name in ("none", "host", "bridge", "-bad", "a/b"):
        with pytest.raises(InvalidInput):
            make_network(name, parse_subnet("10.89.1.0/24"), "berth1")


def test_free_subnet_skips_networks_and_routes() -> None:
    taken = [ipaddress.IPv4Network("10.89.0.0/24"), ipaddress.IPv4Network("10.89.1.0/25")]
    assert str(free_subnet(taken)) == "10.89.2.0/24"


def test_remove_refuses_a_network_in_use() -> None:
    with pytest.raises(Conflict, match="in use by container"):
        plan_remove("a", view(users={"a": ["web"]}))
    assert [a.kind for a in plan_remove("a", view())] == ["remove-network"]
    assert plan_remove("zzz", view()) == []


def test_spec_network_fields() -> None:
    base = {"name": "c", "rootfs": "/r", "command": ["true"]}
    assert parse_spec(base).network == "none"
    assert "networks" not in parse_spec(base).to_json()  # hashes of older specs stay put
    s = parse_spec({**base, "network": "bridge", "ports": ["8080:80"]})
    assert (s.network, s.networks, [str(p) for p in s.ports]) == ("bridge", ("berth",), ["8080:80/tcp"])
    s = parse_spec({**base, "network": "front", "networks": ["back"]})
    assert (s.network, s.networks) == ("bridge", ("front", "back"))
    assert ContainerSpec.from_json(s.to_json()) == s
    for bad, match in (
        ({"network": "none", "ports": ["80:80"]}, "needs a network"),
        ({"network": "host", "networks": ["x"]}, "joins no networks"),
        ({"network": "bridge", "ports": ["80:80", "80:81"]}, "same host port"),
        ({"network": "bad name"}, "invalid network name"),
        ({"networks": ["a", "a"]}, "twice"),
        ({"network": "bridge", "ports": ["80"]}, "expected"),
    ):
        with pytest.raises(InvalidInput, match=match):
            parse_spec({**base, **bad})
