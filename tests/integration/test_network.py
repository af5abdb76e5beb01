"""Container networking on real systemd hosts: bridges, names, published ports, the traffic
switch, cleanup, and bad input that changes nothing.

All traffic stays inside the lab: container <-> lab host, lab host <-> lab host, loopback.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
from labkit import VENV, Lab
from rootfs import ROOTFS, build_rootfs

pytestmark = pytest.mark.lab
PY = str(VENV / "bin" / "python")


# Debian's busybox 1.35 wget crashes with -T: timeouts come from `timeout` instead.


class Net:
    """berth on one lab host, removing every container and network a test made."""

    def __init__(self, lab: Lab, host: str) -> None:
        self.lab, self.host = lab, host
        self.containers: list[str] = []
        self.networks: list[str] = []

    def sh(self, script: str, check: bool = True) -> str:
        return self.lab.run(self.host, ["sh", "-c", script], check=check).stdout

    def berth(self, *args: str, check: bool = True) -> dict:  # type: ignore[type-arg]
        return self.lab.berth(self.host, *args, check=check)

    def web(self, name: str, text: str, *opts: str) -> dict:  # type: ignore[type-arg]
        """An httpd container serving `text` on port 80."""
        self.containers.append(name)
        self.sh(f"mkdir -p /srv/{name} && echo {text} > /srv/{name}/index.html")
        out = self.berth(
            "run", "-d", "--name", name, "--rootfs", ROOTFS, "-v", f"/srv/{name}:/www:ro",
            *opts, "httpd", "-f", "-p", "80", "-h", "/www",
        )  # fmt: skip
        # httpd listens a moment after its process starts: ask it inside its own netns
        probe = f"nsenter --net=/run/berth/netns/{name} timeout 1 wget -qO- http://127.0.0.1/"
        deadline = time.monotonic() + 10
        while self.sh(probe, check=False).strip() != text and time.monotonic() < deadline:
            time.sleep(0.05)
        return out

    def run(self, name: str, *opts_and_cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.containers.append(name)
        argv = ["berth", "run", "--rm", "--name", name, "--rootfs", ROOTFS, *opts_and_cmd]
        return self.lab.run(self.host, argv, check=check)

    def get(self, url: str, host: str | None = None) -> str:
        return self.lab.run(host or self.host, ["timeout", "3", "wget", "-qO-", url]).stdout.strip()

    def snapshot(self) -> dict[str, str]:
        """Everything networking could have changed on the host."""
        return {
            "links": self.sh("ip -o link show | awk -F': ' '{print $2}' | sort"),
            "addresses": self.sh("ip -4 -o addr show | awk '{print $2, $4}' | sort"),
            "nft": self.sh("nft list ruleset"),
            "state": self.sh(
                "cd /var/lib/berth && find network -type f ! -name .lock | sort | xargs -r md5sum",
                check=False,
            ),
            "netns": self.sh("ls /run/berth/netns 2>/dev/null", check=False),
            "containers": self.sh("ls /var/lib/berth/containers 2>/dev/null", check=False),
        }

    def cleanup(self) -> None:
        for name in self.containers:
            self.lab.run(self.host, ["berth", "rm", "-f", name], check=False)
        for name in self.networks:
            self.lab.run(self.host, ["berth", "network", "rm", name], check=False)


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


def test_a_crashed_container_releases_its_ports_and_restart_always_gets_them_back(net: Net) -> None:
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
    net.berth("kill", "phoenix")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        got = net.lab.run(net.host, ["timeout", "1", "wget", "-qO-", "http://127.0.0.1:8094/"], check=False)
        if got.stdout.strip() == "phoenix":
            break
        time.sleep(0.2)
    assert net.get("http://127.0.0.1:8094/") == "phoenix"


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
