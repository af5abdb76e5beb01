"""berth.fleet.network, network_info and container's networks and ports through ansible-playbook.

On a real systemd lab host: a network is created (changed), applied again (no change), planned in
check mode (nothing on the host changes); a web container joins it with a published port that
answers from another lab host; a changed port replaces the container and shows in the diff; a
network in use, an overlapping subnet and a malformed one are refused clearly with nothing changed.

All traffic stays inside the lab (lab host <-> lab host, and the lab's own bridges).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from rootfs import ROOTFS, build_rootfs
from test_module_unit import Play

if TYPE_CHECKING:
    from labkit import Lab

pytestmark = pytest.mark.lab

# Subnets and ports no other test file uses: files may run side by side on one lab.
SUBNET = "10.89.70.0/24"
OTHER = "10.89.71.0/24"
PORT, NEW_PORT = 8270, 8271
PREFIX = "itn-"


class Host(Play):
    """A Play on one lab host, with what networking can change there (check mode must not)."""

    def sh(self, script: str, check: bool = True) -> str:
        return self.lab.run(self.host, ["sh", "-c", script], check=check).stdout

    def snapshot(self) -> dict[str, str]:  # type: ignore[override]
        return {
            "links": self.sh("ip -o link show | awk -F': ' '{print $2}' | sort"),
            "addresses": self.sh("ip -4 -o addr show | awk '{print $2, $4}' | sort"),
            "nft": self.sh("nft list table ip berth 2>/dev/null || true"),
            "state": self.sh(
                "cd /var/lib/berth 2>/dev/null && find network containers -type f ! -name .lock "
                "! -path '*/upper/*' 2>/dev/null | LC_ALL=C sort | xargs -r md5sum || true"
            ),
            "units": self.sh("systemctl list-units --all --plain --no-legend 'berth-itn-*' || true"),
        }

    def networks(self) -> dict[str, dict[str, Any]]:
        return {row["name"]: row for row in self.lab.berth(self.host, "network", "ls")["data"]}


@pytest.fixture(scope="module")
def rootfs(lab: Lab) -> str:
    build_rootfs(lab, lab.hosts[-1])
    return ROOTFS


@pytest.fixture
def play(lab: Lab, scratch_dir: Path, rootfs: str) -> Iterator[Host]:
    runner = Host(lab, scratch_dir, lab.hosts[-1])
    try:
        yield runner
    finally:
        for row in lab.berth(runner.host, "ps", "--all")["data"]:
            if row["name"].startswith(PREFIX):
                lab.berth(runner.host, "rm", "-f", row["name"], check=False)
        for name in runner.networks():
            if name.startswith(PREFIX):
                lab.berth(runner.host, "network", "rm", name, check=False)
        runner.sh(f"rm -rf /srv/{PREFIX}www", check=False)


def web(port: int, **more: Any) -> dict[str, Any]:
    """An httpd container on the network itn-web, publishing its port 80 on `port`."""
    return {
        "name": f"{PREFIX}web",
        "rootfs": ROOTFS,
        "command": ["httpd", "-f", "-p", "80", "-h", "/www"],
        "mounts": [{"type": "bind", "source": f"/srv/{PREFIX}www", "target": "/www", "read_only": True}],
        "network": f"{PREFIX}web",
        "ports": [f"{port}:80"],
        "stop_timeout": 1,
        **more,
    }


def fetch(lab: Lab, client: str, url: str, want: str | None, timeout: float = 15) -> str:
    """GET `url` from lab host `client` until it answers `want` (None: until it fails)."""
    deadline = time.monotonic() + timeout
    while True:
        proc = lab.run(client, ["timeout", "3", "wget", "-qO-", url], check=False)
        body = proc.stdout.strip() if proc.returncode == 0 else None
        if body == want or time.monotonic() > deadline:
            return body or ""
        time.sleep(0.1)


def kinds(result: dict[str, Any]) -> list[str]:
    return [a["action"] for a in result["actions"]]


def test_network_and_a_published_web_container(play: Host, lab: Lab) -> None:
    net = {"name": f"{PREFIX}web", "subnet": SUBNET}
    address, client = lab.addresses[play.host], lab.hosts[0]
    play.sh(f"mkdir -p /srv/{PREFIX}www && echo hello-network > /srv/{PREFIX}www/index.html")

    # Check mode plans the creation and changes nothing on the host.
    before = play.snapshot()
    [planned] = play.batch([(net, "network", True)])
    assert planned["changed"] is True and kinds(planned) == ["create-network"], planned
    assert planned["diff"]["before"] == {"state": "absent"}
    assert planned["diff"]["after"]["subnet"] == SUBNET
    assert play.snapshot() == before
    assert f"{PREFIX}web" not in play.networks()

    created, again, checked, info, started, same = play.batch(
        [
            (net, "network", False),
            (net, "network", False),
            (net, "network", True),
            ({"name": f"{PREFIX}web"}, "network_info", False),
            (web(PORT), "container", False),
            (web(PORT), "container", False),
        ]
    )
    assert created["changed"] is True and kinds(created) == ["create-network"], created
    assert created["network"] == {
        "name": f"{PREFIX}web",
        "subnet": SUBNET,
        "gateway": "10.89.70.1",
        "bridge": created["network"]["bridge"],
        "masquerade": True,
        "containers": [],
    }
    assert created["diff"]["after"] == {
        "state": "present",
        **{k: v for k, v in created["network"].items() if k != "containers"},
    }
    assert again["changed"] is False and again["actions"] == [], again
    assert again["diff"]["before"] == again["diff"]["after"]
    assert checked["changed"] is False and checked["actions"] == [], checked
    [row] = info["networks"]
    assert row["subnet"] == SUBNET and row["containers"] == [] and row["attached"] == []
    bridge = created["network"]["bridge"]
    assert "10.89.70.1/24" in play.sh(f"ip -4 -o addr show dev {bridge}")

    assert started["changed"] is True and kinds(started) == ["create", "start"], started
    spec = started["container"]["spec"]
    assert spec["network"] == "bridge" and spec["networks"] == [f"{PREFIX}web"]
    assert spec["ports"] == [{"protocol": "tcp", "host_port": PORT, "container_port": 80}]
    assert same["changed"] is False and same["actions"] == [], same

    # The published port answers from another lab host, at this host's address.
    assert fetch(lab, client, f"http://{address}:{PORT}/", "hello-network") == "hello-network"
    [row] = play.batch([({"name": f"{PREFIX}web"}, "network_info", False)])[0]["networks"]
    assert row["containers"] == [f"{PREFIX}web"]
    assert [p["port"] for p in row["ports"]] == [f"{PORT}:80/tcp"]
    assert row["attached"][0]["address"].startswith("10.89.70.")

    # A new port replaces the container and shows in the diff; the network in use is refused.
    moved, remove_checked, remove, resubnet, still = play.batch(
        [
            (web(NEW_PORT), "container", False),
            ({"name": f"{PREFIX}web", "state": "absent"}, "network", True),
            ({"name": f"{PREFIX}web", "state": "absent"}, "network", False),
            ({"name": f"{PREFIX}web", "subnet": OTHER}, "network", False),
            (net, "network", False),
        ]
    )
    assert moved["changed"] is True and kinds(moved) == ["stop", "remove", "create", "start"], moved
    assert moved["diff"]["before"]["spec"]["ports"] == [
        {"protocol": "tcp", "host_port": PORT, "container_port": 80}
    ]
    assert moved["diff"]["after"]["spec"]["ports"] == [
        {"protocol": "tcp", "host_port": NEW_PORT, "container_port": 80}
    ]
    changed_fields = {
        k for k, v in moved["diff"]["after"]["spec"].items() if moved["diff"]["before"]["spec"].get(k) != v
    }
    assert changed_fields == {"ports"}
    for refused in (remove_checked, remove, resubnet):
        assert refused.get("failed") is True and refused["changed"] is False, refused
        assert refused["actions"] == [] and refused["error"]["kind"] == "conflict", refused
        assert "in use by container(s) itn-web" in refused["msg"], refused["msg"]
        assert refused["error"]["details"]["containers"] == [f"{PREFIX}web"]
    assert "subnet 10.89.70.0/24 -> 10.89.71.0/24" in resubnet["msg"]
    assert still["changed"] is False, still
    assert play.networks()[f"{PREFIX}web"]["subnet"] == SUBNET
    assert fetch(lab, client, f"http://{address}:{NEW_PORT}/", "hello-network") == "hello-network"
    assert fetch(lab, client, f"http://{address}:{PORT}/", None, timeout=3) == ""

    # Container, then network, removed; removing again changes nothing.
    gone, net_gone, net_again = play.batch(
        [
            ({"name": f"{PREFIX}web", "state": "absent"}, "container", False),
            ({"name": f"{PREFIX}web", "state": "absent"}, "network", False),
            ({"name": f"{PREFIX}web", "state": "absent"}, "network", False),
        ]
    )
    assert gone["changed"] is True, gone
    assert net_gone["changed"] is True and kinds(net_gone) == ["remove-network"], net_gone
    assert net_gone["diff"] == {"before": created["diff"]["after"], "after": {"state": "absent"}}
    assert net_again["changed"] is False and net_again["actions"] == [], net_again
    assert f"{PREFIX}web" not in play.networks()
    assert play.sh(f"ip link show {bridge} 2>&1", check=False).strip().endswith("does not exist.")


def test_changes_of_an_unused_network_and_bad_input(play: Host, lab: Lab) -> None:
    first = {"name": f"{PREFIX}a", "subnet": OTHER}
    [created] = play.batch([(first, "network", False)])
    assert created["changed"] is True, created

    masquerading = f"ip saddr {OTHER} ip daddr != {OTHER} masquerade"
    assert masquerading in play.sh("nft list table ip berth")

    before = play.snapshot()
    lab_route = lab.addresses[play.host].rsplit(".", 1)[0] + ".0/24"
    bad, overlap, routed, gateway, badname, family = play.batch(
        [
            ({"name": f"{PREFIX}b", "subnet": "10.89.72.1/24"}, "network", False),
            ({"name": f"{PREFIX}b", "subnet": "10.89.71.128/25"}, "network", False),
            ({"name": f"{PREFIX}b", "subnet": lab_route}, "network", True),
            ({"name": f"{PREFIX}b", "subnet": "10.89.72.0/24", "gateway": "10.89.73.1"}, "network", False),
            ({"name": "host"}, "network", False),
            ({"name": f"{PREFIX}b", "subnet6": "10.89.72.0/24"}, "network", False),
        ]
    )
    for refused in (bad, overlap, routed, gateway, badname, family):
        assert refused.get("failed") is True and refused["changed"] is False, refused
        assert refused["actions"] == [], refused
    assert bad["error"]["kind"] == "invalid-input"
    assert "subnet '10.89.72.1/24' is not a valid CIDR network" in bad["msg"], bad["msg"]
    assert overlap["error"]["kind"] == "conflict"
    assert f"overlaps network {PREFIX}a ({OTHER})" in overlap["msg"], overlap["msg"]
    assert routed["error"]["kind"] == "conflict" and "collides with a route" in routed["msg"], routed
    assert gateway["error"]["kind"] == "invalid-input" and "not a host address" in gateway["msg"], gateway
    assert badname["error"]["kind"] == "invalid-input" and "network mode" in badname["msg"], badname
    assert "subnet6 takes an IPv6 value" in family["msg"], family
    assert play.snapshot() == before

    # Masquerade alone changes live; a new subnet re-creates the network (no container uses it).
    dual = dict(first, masquerade=False, subnet="10.89.72.0/24", subnet6="fd00:72::/64")
    live, resubnet, same, dual_stack, dual_same = play.batch(
        [
            (dict(first, masquerade=False), "network", False),
            (dict(first, masquerade=False, subnet="10.89.72.0/24"), "network", False),
            (dict(first, masquerade=False, subnet="10.89.72.0/24"), "network", False),
            (dual, "network", False),  # IPv6 added: the bridge is re-created with both gateways
            (dual, "network", False),
        ]
    )
    assert kinds(live) == ["update-network"] and live["diff"]["after"]["masquerade"] is False, live
    assert masquerading not in play.sh("nft list table ip berth")
    assert kinds(resubnet) == ["remove-network", "create-network"], resubnet
    assert resubnet["diff"]["before"]["subnet"] == OTHER
    assert resubnet["diff"]["after"]["subnet"] == "10.89.72.0/24"
    assert same["changed"] is False, same
    assert kinds(dual_stack) == ["remove-network", "create-network"], dual_stack
    assert "subnet6" not in dual_stack["diff"]["before"]
    assert dual_stack["diff"]["after"]["subnet6"] == "fd00:72::/64"
    assert dual_same["changed"] is False, dual_same
    row = play.networks()[f"{PREFIX}a"]
    assert (row["subnet"], row["subnet6"], row["gateway6"]) == ("10.89.72.0/24", "fd00:72::/64", "fd00:72::1")
    assert "inet6 fd00:72::1/64" in play.sh(f"ip -6 addr show dev {row['bridge']}")
