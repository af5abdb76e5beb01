"""Container networking on real systemd hosts: bridges, names, published ports, the traffic
switch, cleanup, and bad input that changes nothing.

All traffic stays inside the lab: container <-> lab host, lab host <-> lab host, loopback.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from labkit import VENV, Lab, berth
from netkit import Net
from rootfs import ROOTFS, build_rootfs

pytestmark = pytest.mark.lab
PY = str(VENV / "bin" / "python")


@pytest.fixture(scope="module")
def rootfs(lab: Lab) -> str:
    for host in lab.hosts[:2]:
        build_rootfs(lab, host)
    return ROOTFS


@pytest.fixture
def net(lab: Lab, rootfs: str) -> Iterator[Net]:
    n = Net(lab, lab.hosts[0])
    try:
        yield n
    finally:
        n.cleanup()


def test_containers_reach_each_other_by_name_the_gateway_and_other_hosts(net: Net, lab: Lab) -> None:
    net.berth("network", "create", "apps", "--subnet", "10.89.40.0/24")
    net.networks.append("apps")
    net.web("srv", "hello-srv", "--network", "apps")
    other = lab.addresses[lab.hosts[1]]
    out = net.run(
        "cli", "--network", "apps", "sh", "-c",
        "cat /etc/hosts; timeout 3 wget -qO- http://srv/; "
        # the host's sshd answers on the gateway, another lab host's through masquerade
        f"echo | nc -w 3 10.89.40.1 22 | head -c 7; echo; echo | nc -w 3 {other} 22 | head -c 7",
    ).stdout  # fmt: skip
    lines = out.splitlines()
    assert "10.89.40.1\thost.berth.internal" in lines
    srv_line = next(line for line in lines if line.endswith("\tsrv"))
    assert srv_line.startswith("10.89.40.")
    assert lines[-3:] == ["hello-srv", "SSH-2.0", "SSH-2.0"]
    # srv's own /etc/hosts learnt about cli while it ran, and forgot it when it left
    assert "\tcli" not in net.sh("cat /run/berth/containers/srv/hosts")
    assert net.sh("cat /run/berth/containers/srv/hosts").count("\tsrv") == 1


def test_a_published_port_answers_on_the_host_and_from_another_host(net: Net, lab: Lab) -> None:
    net.web("pub", "hello-pub", "--network", "bridge", "-p", "8081:80")
    address = lab.addresses[net.host]
    assert net.get("http://127.0.0.1:8081/") == "hello-pub"
    assert net.get(f"http://{address}:8081/") == "hello-pub"
    assert net.get(f"http://{address}:8081/", host=lab.hosts[1]) == "hello-pub"
    # bound to one host address: only that address answers
    net.web("pub-lo", "hello-lo", "--network", "bridge", "-p", "127.0.0.1:8082:80")
    assert net.get("http://127.0.0.1:8082/") == "hello-lo"
    failed = lab.run(lab.hosts[1], ["timeout", "2", "wget", "-qO-", f"http://{address}:8082/"], check=False)
    assert failed.returncode != 0


CLIENT = r"""
import socket, sys, time, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
# one connection opened before the switch, used again after it: it must stay with its container
echo = socket.create_connection((sys.argv[3], int(sys.argv[4])), timeout=5)
echo.sendall(b"before\n"); first = echo.recv(100)
seen, failures = {}, 0
for i in range(n):
    try:
        body = urllib.request.urlopen(url, timeout=3).read().decode().strip()
        seen[body] = seen.get(body, 0) + 1
    except Exception as exc:
        failures += 1; print("FAIL", i, exc, file=sys.stderr)
    time.sleep(0.01)
echo.sendall(b"after\n"); second = echo.recv(100)
print(failures, sorted(seen.items()), first, second)
"""


def test_the_traffic_switch_moves_a_port_while_a_client_loops_and_no_request_fails(
    net: Net, lab: Lab
) -> None:
    net.web("blue", "blue", "--network", "bridge", "-p", "8090:80")
    net.web("green", "green", "--network", "bridge")
    for name in ("echo-blue", "echo-green"):
        net.containers.append(name)
        net.berth(
            "run", "-d", "--name", name, "--rootfs", ROOTFS, "--network", "bridge",
            *(["-p", "8091:90"] if name == "echo-blue" else []),
            "sh", "-c", "while true; do nc -l -p 90 -e cat; done",
        )  # fmt: skip
    address = lab.addresses[net.host]
    time.sleep(0.3)
    client_host = lab.hosts[1]
    cmd = ["nsenter", "-t", str(lab.pids[client_host]), "-a", PY, "-c", CLIENT]
    client = subprocess.Popen(
        [*cmd, f"http://{address}:8090/", "300", address, "8091"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        moves = []
        for target in ("green", "blue", "green"):
            moved = net.berth("network", "switch", "8090", target)
            assert moved["changed"] and moved["data"]["to"] == target
            moves.append(moved["data"]["from"])
            time.sleep(0.7)
        net.berth("network", "switch", "8091", "echo-green")  # the open echo connection stays on blue
        out, err = client.communicate(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
    assert moves == ["blue", "green", "blue"]
    failures, rest = out.split(" ", 1)
    assert failures == "0", err
    assert "('blue'," in rest and "('green'," in rest
    assert rest.endswith("b'before\\n' b'after\\n'\n")
    assert net.get("http://127.0.0.1:8090/") == "green"
    # the switched port answers from the new holder only, and the old one can stop freely
    net.berth("stop", "blue")
    assert net.get("http://127.0.0.1:8090/") == "green"
    ports = {p["key"]: p["container"] for p in net.berth("network", "ports")["data"]}
    assert ports == {"*:8090/tcp": "green", "*:8091/tcp": "echo-green"}


def test_a_crashed_container_releases_its_ports_and_a_restarted_one_keeps_address_and_ports(
    net: Net,
) -> None:
    net.containers.append("crash")
    net.berth(
        "run", "-d", "--name", "crash", "--rootfs", ROOTFS, "--network", "bridge", "-p", "8093:80",
        "sh", "-c", "sleep 0.5; exit 3",
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while net.berth("network", "ports")["data"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert net.berth("network", "ports")["data"] == []
    assert "crash" not in net.sh("ls /run/berth/netns", check=False)
    net.web("phoenix", "phoenix", "--network", "bridge", "-p", "8094:80", "--restart", "always")
    assert net.get("http://127.0.0.1:8094/") == "phoenix"
    address = net.sh("nsenter --net=/run/berth/netns/phoenix ip -o -4 addr show eth0 | awk '{print $4}'")
    pid = net.berth("inspect", "phoenix")["data"][0]["pid"]
    net.sh(f"kill -9 {pid}")  # the container's PID 1, from the host: a crash systemd restarts
    assert wait_for(lambda: net.berth("inspect", "phoenix")["data"][0]["pid"] not in (None, pid))
    assert wait_for(lambda: answers(net, "http://127.0.0.1:8094/") == "phoenix")
    # the same namespace and address: the restart was parked, not detached and attached anew
    assert (
        net.sh("nsenter --net=/run/berth/netns/phoenix ip -o -4 addr show eth0 | awk '{print $4}'") == address
    )
    assert [p["key"] for p in net.berth("network", "ports")["data"]] == ["*:8094/tcp"]


def test_a_container_started_again_is_reached_at_once_from_another_host(net: Net, lab: Lab) -> None:
    """`berth stop` + `berth start` gives the container a new veth on the address it had. The
    host's neighbour entry for that address (fresh: a client just used it) must stay right:
    the MAC comes from the address, and the bridge keeps its own MAC as ports come and go."""
    other = lab.hosts[1]
    url = f"http://{lab.addresses[net.host]}:8095/"
    net.web("again", "again", "--network", "bridge", "-p", "8095:80")
    assert net.get(url, host=other) == "again"
    mac = "ip -o link show eth0 | sed 's/.*link.ether \\([0-9a-f:]*\\).*/\\1/'"  # not /sys: the host's
    before = net.sh(f"nsenter --net=/run/berth/netns/again {mac}").strip()
    bridge = net.sh("cat /sys/class/net/berth0/address").strip()
    address = net.berth("inspect", "again")["data"][0]["networks"]
    assert address[0]["mac"] == before, address
    assert before.startswith("02:62:"), before
    net.web("neighbour", "neighbour", "--network", "bridge")  # one more port on the bridge
    net.berth("stop", "again")
    net.berth("start", "again")
    assert net.berth("inspect", "again")["data"][0]["networks"] == address
    assert net.sh(f"nsenter --net=/run/berth/netns/again {mac}").strip() == before
    # At once: no retry, one 3 s timeout (a stale neighbour entry meant seconds of silence).
    assert net.get(url, host=other) == "again"
    net.berth("rm", "-f", "neighbour")
    assert net.sh("cat /sys/class/net/berth0/address").strip() == bridge


def test_a_container_systemd_gives_up_on_keeps_its_port_reserved_not_forwarded(net: Net) -> None:
    """on-failure:1: the second crash parks the container for a restart the start limit refuses."""
    net.containers.append("quitter")
    net.berth(
        "run", "-d", "--name", "quitter", "--rootfs", ROOTFS, "--network", "bridge", "-p", "8092:80",
        "--restart", "on-failure:1", "sh", "-c", "sleep 0.3; exit 3",
    )  # fmt: skip

    def given_up() -> bool:  # not active, not auto-restarting, twice in a row
        probe = (
            "systemctl is-active berth-quitter.service; sleep 0.5; systemctl is-active berth-quitter.service"
        )
        return net.sh(probe, check=False).split() == ["inactive", "inactive"]

    assert wait_for(given_up)
    [row] = net.berth("network", "ports")["data"]
    assert (row["key"], row["container"], row["parked"]) == ("*:8092/tcp", "quitter", True)
    assert "8092" not in net.sh("nft list table ip berth")  # no rule points at a dead container
    assert "quitter" in net.sh("ls /run/berth/netns")
    net.berth("rm", "-f", "quitter")  # rm releases the reservation
    assert net.berth("network", "ports")["data"] == []
    assert "quitter" not in net.sh("ls /run/berth/netns", check=False)


def wait_for(check: Callable[[], bool], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def answers(net: Net, url: str) -> str:
    return net.lab.run(net.host, ["timeout", "1", "wget", "-qO-", url], check=False).stdout.strip()


# Serves $V on ports 80 and 81: two service ports of one role.
TWO_PORTS = "mkdir -p /w && echo $V > /w/index.html && httpd -p 81 -h /w && exec httpd -f -p 80 -h /w"
# Samples both service ports back to back, port A then port B, and prints "<A><B>" per round.
SAMPLER = (
    "rm -f /run/sampler.stop; while [ ! -e /run/sampler.stop ]; do "
    "a=$(timeout 2 wget -qO- http://127.0.0.1:8180/ 2>/dev/null); "
    'b=$(timeout 2 wget -qO- http://127.0.0.1:8181/ 2>/dev/null); echo "${a:-x}${b:-x}"; done'
)


def test_a_deployment_moves_both_its_ports_at_once_and_keeps_them_across_a_crash(net: Net, lab: Lab) -> None:
    """Two service ports move in one nftables transaction: never A on v2 while B is still on v1.
    A crash of the serving container (kill -9 from the host) is restarted by systemd with the
    same address, and both switched ports (no container spec publishes them) answer again."""

    def deploy(version: int) -> None:
        role = {
            "role": "web", "rootfs": ROOTFS, "env": {"V": str(version)}, "stop_signal": "KILL",
            "command": ["sh", "-c", TWO_PORTS], "ports": ["8180:80", "8181:81"],
            "health": {"tcp": {"port": 81}, "interval": "100ms", "timeout": "1s", "retries": 3,
                       "min_healthy": "200ms", "deadline": "10s"},
        }  # fmt: skip
        doc = {"name": "twin", "keep": 2, "drain": "200ms", "containers": [role]}
        net.lab.run(net.host, ["sh", "-c", "cat > /var/lib/berth/twin.json"], input=json.dumps(doc))
        net.berth("deploy", "twin", "-f", "/var/lib/berth/twin.json")

    try:
        deploy(1)
        assert (answers(net, "http://127.0.0.1:8180/"), answers(net, "http://127.0.0.1:8181/")) == ("1", "1")
        ctr = "twin-1-web"
        address = net.sh(f"nsenter --net=/run/berth/netns/{ctr} ip -o -4 addr show eth0 | awk '{{print $4}}'")
        pid = net.berth("inspect", ctr)["data"][0]["pid"]
        net.sh(f"kill -9 {pid}")
        assert wait_for(lambda: net.berth("inspect", ctr)["data"][0]["pid"] not in (None, pid))
        assert wait_for(lambda: answers(net, "http://127.0.0.1:8181/") == "1")
        assert answers(net, "http://127.0.0.1:8180/") == "1"
        assert (
            net.sh(f"nsenter --net=/run/berth/netns/{ctr} ip -o -4 addr show eth0 | awk '{{print $4}}'")
            == address
        )
        held = {p["key"]: p["container"] for p in net.berth("network", "ports")["data"]}
        assert held == {"*:8180/tcp": ctr, "*:8181/tcp": ctr}

        cmd = ["nsenter", "-t", str(lab.pids[net.host]), "-a", "sh", "-c", SAMPLER]
        sampler = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(0.5)
            deploy(2)
            time.sleep(0.5)
        finally:
            net.sh("touch /run/sampler.stop")
            out, _ = sampler.communicate(timeout=10)
        rounds = out.split()
        assert "11" in rounds and "22" in rounds, rounds[-5:]
        assert "21" not in rounds, "port A on v2 while port B was still on v1"
        assert set(rounds) <= {"11", "12", "22"}, sorted(set(rounds))
        held = {p["key"]: p["container"] for p in net.berth("network", "ports")["data"]}
        assert held == {"*:8180/tcp": "twin-2-web", "*:8181/tcp": "twin-2-web"}
    finally:
        net.lab.run(net.host, ["berth", "undeploy", "twin"], check=False)


def test_rm_of_containers_and_networks_leaves_nothing_behind(net: Net) -> None:
    net.berth("network", "rm", "berth", check=False)  # the default network, made by earlier tests
    before = net.snapshot()
    net.berth("network", "create", "tidy", "--subnet", "10.89.41.0/24", "--bridge", "btidy")
    net.web("t1", "t1", "--network", "tidy", "-p", "8095:80")
    net.web("t2", "t2", "--network", "tidy,bridge", "-p", "8096:80/tcp")
    assert net.sh("ls /run/berth/netns").split() == ["t1", "t2"]
    assert len(net.berth("network", "inspect", "tidy")["data"][0]["leases"]) == 2
    assert net.sh("nsenter --net=/run/berth/netns/t2 ip -o -4 addr show | awk '{print $2}'").split() == [
        "lo",
        "eth0",
        "eth1",
    ]
    net.berth("rm", "-f", "t1", "t2")
    net.berth("network", "rm", "tidy")
    net.berth("network", "rm", "berth")
    after = net.snapshot()
    assert after == before
    assert "bth" not in after["links"] and "btidy" not in after["links"]
    assert "table ip berth" not in after["nft"]
    assert net.sh("ls /var/lib/berth/network/leases /var/lib/berth/network/attachments").split() == [
        "/var/lib/berth/network/attachments:",
        "/var/lib/berth/network/leases:",
    ]


@pytest.fixture(scope="module")
def in_use(lab: Lab, rootfs: str) -> Iterator[Net]:
    """A network with a container publishing a port, for the conflicts below (set up once)."""
    net = Net(lab, lab.hosts[0])
    try:
        net.berth("network", "create", "busy", "--subnet", "10.89.42.0/24")
        net.networks.append("busy")
        net.web("holder", "holder", "--network", "busy", "-p", "8097:80")
        yield net
    finally:
        net.cleanup()


@pytest.mark.parametrize(
    ("argv", "kind", "words"),
    [
        (["network", "create", "n2", "--subnet", "10.89.42.128/25"], "conflict", "overlaps network busy"),
        (["network", "create", "n2", "--subnet", "10.251.0.0/16"], "conflict", "collides with a route"),
        (["network", "create", "n2", "--bridge", "eth0"], "conflict", "bridge name eth0 is taken"),
        (["network", "create", "busy", "--subnet", "10.89.43.0/24"], "conflict", "exists with other"),
        (["network", "create", "n2", "--subnet", "10.89.43.1/24"], "invalid-input", "has host bits set"),
        (["network", "create", "n2", "--subnet", "10.89.43.0/24", "--gateway", "10.9.9.9"],
         "invalid-input", "not a host address"),
        (["network", "create", "bad/name"], "invalid-input", "invalid network name"),
        (["network", "rm", "busy"], "conflict", "in use by container(s) holder"),
        (["network", "rm", "nope"], "not-found", "no network named"),
        (["run", "-d", "--name", "x", "--rootfs", ROOTFS, "--network", "busy", "-p", "8097:80", "true"],
         "conflict", "already published by container holder"),
        (["run", "-d", "--name", "x", "--rootfs", ROOTFS, "--network", "busy", "-p", "22:80", "true"],
         "conflict", "in use on the host"),
        (["run", "-d", "--name", "x", "--rootfs", ROOTFS, "--network", "busy", "-p", "8098:99999", "true"],
         "invalid-input", "not between 1 and 65535"),
        (["run", "-d", "--name", "x", "--rootfs", ROOTFS, "--network", "busy", "-p", "1.2.3:80:80", "true"],
         "invalid-input", "is not an IP address"),
        (["run", "-d", "--name", "x", "--rootfs", ROOTFS, "--network", "busy",
          "-p", "10.1.2.3:8099:80", "true"], "invalid-input", "not an address of this host"),
        (["run", "-d", "--name", "x", "--rootfs", ROOTFS, "--network", "nonet", "true"],
         "not-found", "no network named"),
        (["run", "-d", "--name", "x", "--rootfs", ROOTFS, "-p", "8099:80", "true"],
         "invalid-input", "needs a network"),
        (["network", "switch", "8097", "nobody"], "conflict", "not running on a network"),
        (["network", "switch", "8199", "holder"], "not-found", "no published port"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_error_and_changes_nothing(
    in_use: Net, argv: list[str], kind: str, words: str
) -> None:
    before = in_use.snapshot()
    out = in_use.berth(*argv, check=False)
    in_use.lab.run(in_use.host, ["berth", "rm", "-f", "x"], check=False)  # had it been created
    assert out["exit_code"] != 0 and out["error"]["kind"] == kind, out
    assert words in out["error"]["message"]
    assert in_use.snapshot() == before


@pytest.mark.slow  # a reboot of a lab host: ~25 s
def test_networks_and_published_ports_come_back_after_a_reboot(lab: Lab, rootfs: str) -> None:
    """berth-restore.service re-creates every recorded network at boot, one that no container
    uses included (bridge, both gateways, nftables tables), before the containers come back."""
    host = lab.hosts[-1]
    build_rootfs(lab, host)  # the module's fixture builds it on the first two hosts only
    net = Net(lab, host)
    try:
        net.berth("system", "install")
        net.berth("network", "create", "boot6", "--subnet", "10.89.74.0/24", "--subnet", "fd00:74::/64")
        net.berth("network", "create", "idle", "--subnet", "10.89.75.0/24", "--bridge", "bidle")
        net.networks += ["boot6", "idle"]
        net.web("phoenix6", "back", "--network", "boot6", "-p", "8380:80", "--restart", "always")
        bridge = net.berth("network", "inspect", "boot6")["data"][0]["bridge"]
        before = {
            b: net.sh(f"ip -o addr show dev {b} scope global | awk '{{print $4}}'") for b in (bridge, "bidle")
        }
        berth("lab", "reboot", host, "--name", lab.name)
        lab.refresh()
        after = {
            b: net.sh(f"ip -o addr show dev {b} scope global | awk '{{print $4}}'") for b in (bridge, "bidle")
        }
        assert after == before and after[bridge].split() == ["10.89.74.1/24", "fd00:74::1/64"]
        assert "ip saddr 10.89.75.0/24 ip daddr != 10.89.75.0/24 masquerade" in net.sh(
            "nft list table ip berth"
        )
        assert wait_for(lambda: answers(net, "http://127.0.0.1:8380/") == "back")
        assert answers(net, "http://[fd00:74::1]:8380/") == "back"  # the host's own IPv6 address
        assert net.berth("restore")["changed"] is False  # nothing left to do
    finally:
        net.cleanup()
