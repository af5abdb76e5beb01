"""IPv6 on real systemd hosts: dual-stack and IPv6-only networks, published ports over IPv6.

Only unique local addresses (fd00::/8) are used: the networks' subnets, and the lab hosts'
own IPv6 addresses on the lab bridge (added by the fixture, removed after). Nothing is routed
off the machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from labkit import Lab
from netkit import Net
from rootfs import ROOTFS, build_rootfs

pytestmark = pytest.mark.lab

LAB6 = "fd00:1ab::"  # the lab hosts' IPv6 addresses: fd00:1ab::1 (hosts[0]), ::2 (hosts[1])


def lab_interface(lab: Lab, host: str) -> str:
    out = lab.run(host, ["sh", "-c", f"ip -o -4 addr show | grep ' {lab.addresses[host]}/'"]).stdout
    return out.split()[1]


@pytest.fixture(scope="module")
def v6(lab: Lab) -> Iterator[Net]:
    """hosts[0] with a dual-stack network `dual` and an IPv6-only one `only6`; both lab hosts
    with a ULA address on the lab bridge, so one can reach the other's published ports."""
    added = []
    for i, host in enumerate(lab.hosts[:2], start=1):
        build_rootfs(lab, host)
        iface = lab_interface(lab, host)
        lab.run(host, ["ip", "-6", "addr", "add", f"{LAB6}{i}/64", "dev", iface, "nodad"])
        added.append((host, iface, f"{LAB6}{i}/64"))
    net = Net(lab, lab.hosts[0])
    try:
        net.berth("network", "create", "dual", "--subnet", "10.89.60.0/24", "--subnet", "fd00:b::/64")
        net.networks.append("dual")
        net.berth("network", "create", "only6", "--subnet", "fd00:c::/64", "--bridge", "bonly6")
        net.networks.append("only6")
        yield net
    finally:
        net.cleanup()
        for host, iface, cidr in added:
            lab.run(host, ["ip", "-6", "addr", "del", cidr, "dev", iface], check=False)


def global_addresses(net: Net, container: str) -> list[str]:
    out = net.sh(f"nsenter --net=/run/berth/netns/{container} ip -o addr show eth0 scope global")
    return [line.split()[3] for line in out.splitlines()]


def test_a_dual_stack_container_is_reachable_over_both_families(v6: Net, lab: Lab) -> None:
    v6.web("srv6", "hello-v6", "--network", "dual", "-p", "8280:80")
    assert global_addresses(v6, "srv6") == ["10.89.60.2/24", "fd00:b::2/64"]
    routes = v6.sh("nsenter --net=/run/berth/netns/srv6 ip -6 route show default")
    assert routes.startswith("default via fd00:b::1 dev eth0")
    out = v6.run(
        "cli6", "--network", "dual", "sh", "-c",
        "cat /etc/hosts; timeout 3 wget -qO- 'http://[fd00:b::2]/'; "
        "echo | nc -w 3 fd00:b::1 22 | head -c 7",  # the host's sshd on the IPv6 gateway
    ).stdout  # fmt: skip
    lines = out.splitlines()
    assert "10.89.60.2\tsrv6" in lines and "fd00:b::2\tsrv6" in lines
    assert "fd00:b::1\thost.berth.internal" in lines
    assert lines[-2:] == ["hello-v6", "SSH-2.0"]
    # the published port: IPv4 as before, and IPv6 on the host's own address, from the host
    # itself and from another lab host
    assert v6.get("http://127.0.0.1:8280/") == "hello-v6"
    assert v6.get(f"http://[{LAB6}1]:8280/") == "hello-v6"
    assert v6.get(f"http://[{LAB6}1]:8280/", host=lab.hosts[1]) == "hello-v6"
    assert "dnat to [fd00:b::2]:80" in v6.sh("nft list table ip6 berth")


def test_an_ipv6_only_network_gives_no_ipv4_address(v6: Net, lab: Lab) -> None:
    v6.web("srv6only", "only-v6", "--network", "only6", "-p", "8281:80")
    assert global_addresses(v6, "srv6only") == ["fd00:c::2/64"]
    assert v6.get(f"http://[{LAB6}1]:8281/", host=lab.hosts[1]) == "only-v6"
    # no IPv4 address to forward to: the IPv4 side of the port does not answer
    failed = v6.lab.run(v6.host, ["timeout", "2", "wget", "-qO-", "http://127.0.0.1:8281/"], check=False)
    assert failed.returncode != 0
    inspect = v6.berth("network", "inspect", "only6")["data"][0]
    assert (inspect["subnet"], inspect["subnet6"], inspect["gateway6"]) == (None, "fd00:c::/64", "fd00:c::1")
    assert inspect["leases"] == {"fd00:c::2": "srv6only"}


def test_rm_leaves_no_ipv6_address_rule_or_table(v6: Net) -> None:
    before = v6.snapshot()
    v6.berth("network", "create", "gone6", "--subnet", "fd00:d::/64", "--bridge", "bgone6")
    v6.web("tmp6", "tmp6", "--network", "gone6", "-p", "[fd00:1ab::1]:8282:80")
    assert v6.get(f"http://[{LAB6}1]:8282/") == "tmp6"
    v6.berth("rm", "-f", "tmp6")
    v6.berth("network", "rm", "gone6")
    after = v6.snapshot()
    assert after == before
    assert "fd00:d:" not in v6.sh("ip -6 -o addr show; ip -6 route show")


@pytest.mark.parametrize(
    ("argv", "kind", "words"),
    [
        (["network", "create", "n6", "--subnet", "fd00:b::/48"], "conflict", "overlaps network dual"),
        (["network", "create", "n6", "--subnet", f"{LAB6}/64"], "conflict", "collides with a route"),
        (["network", "create", "n6", "--subnet", "fe80::/64"], "invalid-input", "link-local"),
        (["network", "create", "n6", "--subnet", "fd00:e::/32"], "invalid-input", "between /48 and /120"),
        (["network", "create", "n6", "--subnet", "fd00:e::1/64"], "invalid-input", "has host bits set"),
        (["network", "create", "n6", "--subnet", "fd00:e::/64", "--subnet", "fd00:f::/64"],
         "invalid-input", "one subnet per IP version"),
        (["network", "create", "n6", "--subnet", "10.89.63.0/24", "--gateway", "fd00:e::1"],
         "invalid-input", "has no IPv6 subnet"),
        (["run", "-d", "--name", "x", "--rootfs", ROOTFS, "--network", "dual", "-p", "[::1]:8283:80", "true"],
         "invalid-input", "cannot be forwarded"),
        (["run", "-d", "--name", "x", "--rootfs", ROOTFS, "--network", "dual",
          "-p", "[fd00:9::9]:8283:80", "true"], "invalid-input", "not an address of this host"),
        (["run", "-d", "--name", "x", "--rootfs", ROOTFS, "--network", "only6",
          "-p", "127.0.0.1:8283:80", "true"], "invalid-input", "has no IPv4 subnet"),
    ],
)  # fmt: skip
def test_bad_ipv6_input_is_a_clear_error_and_changes_nothing(
    v6: Net, argv: list[str], kind: str, words: str
) -> None:
    before = v6.snapshot()
    out = v6.berth(*argv, check=False)
    v6.lab.run(v6.host, ["berth", "rm", "-f", "x"], check=False)
    assert out["exit_code"] != 0 and out["error"]["kind"] == kind, out
    assert words in out["error"]["message"]
    assert v6.snapshot() == before
