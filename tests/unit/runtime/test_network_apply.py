"""`berth network apply`: the declarative plan and the request it reads. Pure."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from berth.errors import Conflict, InvalidInput
from berth.network.manager import desired_network
from berth.network.model import Network, make_network, parse_subnet
from berth.network.plan import HostView, plan_network
from berth.network.request import NetworkRequest, parse_request

LAB = ipaddress.IPv4Network("10.251.0.0/24")
A = make_network("a", parse_subnet("10.89.0.0/24"), "berth0")
B = make_network("b", parse_subnet("10.89.7.0/24"), "berth1", gateway="10.89.7.254", masquerade=False)


def view(**kw: object) -> HostView:
    base: dict[str, object] = {
        "networks": {"a": A, "b": B},
        "links": {"lo", "eth0", "berth0", "berth1"},
        "routes": [LAB],
    }
    base.update(kw)
    return HostView(**base)  # type: ignore[arg-type]


def kinds(actions: list) -> list[str]:  # type: ignore[type-arg]
    return [a.kind for a in actions]


def test_create_then_nothing_to_do() -> None:
    c = make_network("c", parse_subnet("10.89.9.0/24"), "berth2")
    assert kinds(plan_network("c", c, view())) == ["create-network"]
    assert plan_network("c", c, view(networks={"a": A, "b": B, "c": c})) == []
    assert plan_network("a", A, view()) == []


def test_absent_removes_an_unused_network_and_nothing_when_there_is_none() -> None:
    assert kinds(plan_network("a", None, view())) == ["remove-network"]
    assert plan_network("zzz", None, view()) == []


def test_absent_refuses_a_network_in_use() -> None:
    with pytest.raises(Conflict, match="in use by container"):
        plan_network("a", None, view(users={"a": ["web"]}))


def test_masquerade_alone_changes_live_even_in_use() -> None:
    actions = plan_network("a", replace(A, masquerade=False), view(users={"a": ["web"]}))
    assert kinds(actions) == ["update-network"]
    assert dict(actions[0].detail) == {"masquerade": False}


@pytest.mark.parametrize(
    "desired",
    [
        make_network("a", parse_subnet("10.89.3.0/24"), "berth0"),
        make_network("a", parse_subnet("10.89.0.0/24"), "berth0", gateway="10.89.0.9"),
        make_network("a", parse_subnet("10.89.0.0/24"), "berth5"),
        make_network("a", parse_subnet("10.89.0.0/23"), "berth0"),  # it may overlap its old self
    ],
    ids=["subnet", "gateway", "bridge", "wider"],
)
def test_other_changes_replace_an_unused_network(desired: Network) -> None:
    actions = plan_network("a", desired, view())
    assert kinds(actions) == ["remove-network", "create-network"]
    assert actions[0].detail["reason"] == "settings changed"


def test_other_changes_of_a_network_in_use_are_refused_and_say_what_differs() -> None:
    desired = make_network("a", parse_subnet("10.89.3.0/24"), "berth0")
    with pytest.raises(
        Conflict, match=r"subnet 10\.89\.0\.0/24 -> 10\.89\.3\.0/24.*in use by container\(s\) web"
    ):
        plan_network("a", desired, view(users={"a": ["web"]}))


@pytest.mark.parametrize(
    ("desired", "match"),
    [
        (make_network("c", parse_subnet("10.89.7.128/25"), "berth2"), "overlaps network b"),
        (make_network("a", parse_subnet("10.89.0.0/16"), "berth0"), "overlaps network b"),
        (make_network("c", parse_subnet("10.251.0.0/16"), "berth2"), "collides with a route"),
        (make_network("c", parse_subnet("10.89.9.0/24"), "eth0"), "bridge name eth0 is taken"),
        (make_network("a", parse_subnet("10.89.0.0/24"), "berth1"), "bridge name berth1 is taken"),
    ],
    ids=["new-overlaps", "changed-overlaps", "route", "host-link", "other-network's-bridge"],
)
def test_clashes_are_refused(desired: Network, match: str) -> None:
    with pytest.raises(Conflict, match=match):
        plan_network(desired.name, desired, view())


def test_desired_network_keeps_what_the_runtime_picked_and_defaults_the_rest() -> None:
    # subnet and bridge left out: the existing network's; gateway left out: the first host
    kept = desired_network("b", None, None, None, False, view())
    assert (kept.subnet, kept.bridge, str(kept.gateway)) == (B.subnet, B.bridge, "10.89.7.1")
    assert kinds(plan_network("b", kept, view())) == ["remove-network", "create-network"]
    same = desired_network("b", None, "10.89.7.254", None, False, view())
    assert plan_network("b", same, view()) == []
    fresh = desired_network("c", None, None, None, True, view())
    assert (str(fresh.subnet), fresh.bridge) == ("10.89.1.0/24", "berth2")


def test_request_defaults_and_fields() -> None:
    assert parse_request({"name": "web"}) == NetworkRequest("web")
    doc = {
        "name": "web",
        "state": "present",
        "subnet": "10.89.5.0/24",
        "gateway": "10.89.5.1",
        "bridge": "br-web",
        "masquerade": False,
    }
    assert parse_request(doc) == NetworkRequest(
        "web", "present", "10.89.5.0/24", "10.89.5.1", "br-web", False
    )
    assert parse_request({"name": "web", "state": "absent", "subnet": "10.89.5.0/24"}).state == "absent"


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ([], "JSON object"),
        ({"name": "web", "internal": True}, "unknown field.*internal"),
        ({"name": "host"}, "network mode"),
        ({"name": ""}, "invalid network name"),
        ({"name": "web", "state": "gone"}, "not present or absent"),
        ({"name": "web", "subnet": 24}, "subnet must be a string"),
        ({"name": "web", "masquerade": "yes"}, "masquerade must be true or false"),
    ],
)
def test_bad_requests(doc: object, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        parse_request(doc)


class FakeNetworks:
    """`Networks.converge` as the CLI sees it: a fixed outcome, and the request it was given."""

    def __init__(self, outcome: object) -> None:
        self.outcome = outcome
        self.calls: list[tuple[NetworkRequest, bool]] = []

    def converge(self, request: NetworkRequest, check: bool = False) -> object:
        self.calls.append((request, check))
        return self.outcome


@pytest.mark.parametrize("check", [False, True], ids=["apply", "check"])
def test_cli_reports_the_plan_the_network_and_a_diff(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], check: bool
) -> None:
    import io
    import json

    from berth.cli import main, network_cmd
    from berth.network.manager import NetworkOutcome
    from berth.plan import Action

    planned = [Action("create-network", "b", B.to_json())]
    outcome = NetworkOutcome(planned, [] if check else planned, None, B, [])
    fake = FakeNetworks(outcome)
    monkeypatch.setattr(network_cmd, "_networks", lambda: fake)
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"name": "b", "subnet": "10.89.7.0/24"})))
    argv = ["network", "apply", "-f", "-", "--json"] + (["--check"] if check else [])
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert fake.calls == [(NetworkRequest("b", subnet="10.89.7.0/24"), check)]
    assert out["ok"] and out["changed"] and out["command"] == "network apply"
    assert [a["action"] for a in out["actions"]] == ["create-network"]
    assert out["data"] == {**B.to_json(), "state": "present", "containers": [], "check_mode": check}
    assert out["diff"] == {"before": {"state": "absent"}, "after": {"state": "present", **B.to_json()}}


def test_cli_absent_and_unchanged(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io
    import json

    from berth.cli import main, network_cmd
    from berth.network.manager import NetworkOutcome

    monkeypatch.setattr(
        network_cmd, "_networks", lambda: FakeNetworks(NetworkOutcome([], [], None, None, []))
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"name": "b", "state": "absent"})))
    assert main(["network", "apply", "-f", "-", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["changed"] is False and out["actions"] == []
    assert out["data"] == {"name": "b", "state": "absent", "containers": [], "check_mode": False}
    assert out["diff"] == {"before": {"state": "absent"}, "after": {"state": "absent"}}
