"""Berth's own nftables tables (`table ip berth`, `table ip6 berth`): NAT for networks and ports.

The tables are rendered whole from Berth's state and loaded with one `nft -f -`, which the
kernel applies as ONE transaction: each table is created if missing, flushed (its rules only: the
base chains stay registered) and filled again. Nothing outside Berth's two tables is ever read,
flushed or rewritten. A published port (or all of a deployment's ports at once) moving to
another container (the traffic switch) is such a reload: new connections see the new rules at
once, and established ones keep the NAT binding conntrack recorded for them, so they finish
where they started.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Iterable, Sequence

from berth.errors import BerthError, Unsupported
from berth.network.model import Network
from berth.network.ports import PortMapping

TABLE = "berth"
FAMILY = "ip"
FAMILY6 = "ip6"


def render(
    networks: Iterable[Network], published: Sequence[tuple[PortMapping, str]], ipv6: bool = False
) -> str:
    """The nft script that makes Berth's tables exactly this; a table with nothing to hold is deleted.

    `published` pairs each port with a container address it forwards to (a dual-stack container
    has one pair per family). `ipv6`: the host has IPv6, so `table ip6 berth` is managed too
    (created for IPv6 networks, deleted when none is left); without it, only `table ip berth`.
    Both tables go in the one script, so one `nft -f` changes both in one transaction.
    """
    nets = sorted(networks, key=lambda n: n.name)
    script = _table(FAMILY, nets, [(p, a) for p, a in published if ipaddress.ip_address(a).version == 4])
    if ipv6:
        v6 = [(p, a) for p, a in published if ipaddress.ip_address(a).version == 6]
        script += _table(FAMILY6, nets, v6)
    return script


def _table(family: str, networks: list[Network], published: list[tuple[PortMapping, str]]) -> str:
    six = family == FAMILY6
    nets = [(n, n.subnet6 if six else n.subnet) for n in networks]
    nets = [(n, sub) for n, sub in nets if sub is not None]
    ip = "ip6" if six else "ip"
    head = f"table {family} {TABLE} {{}}\n"
    if not nets and not published:
        return head + f"delete table {family} {TABLE}\n"
    dnat = []
    # Rules bound to one address first, so they win over a wildcard on another address.
    for port, addr in sorted(published, key=lambda pa: (pa[0].host_ip is None, pa[0])):
        if port.host_ip and ipaddress.ip_address(port.host_ip).version != (6 if six else 4):
            continue
        match = f"{ip} daddr {port.host_ip} " if port.host_ip else ""
        target = f"[{addr}]" if six else addr
        dnat.append(
            f"\t\t{match}{port.protocol} dport {port.host_port} "
            f'dnat to {target}:{port.container_port} comment "{port.key}"'
        )
    post = []
    for net, sub in nets:
        br = f'"{net.bridge}"'
        if not six:
            # The host itself on 127.0.0.1 (route_localnet on the bridge): the container must
            # answer a routable address. IPv6 has no route_localnet: ::1 never leaves the host.
            post.append(f"\t\toifname {br} ip saddr 127.0.0.0/8 masquerade")
        # Hairpin: a container reaching a published port that leads back into its own network.
        post.append(f"\t\toifname {br} {ip} saddr {sub} ct status dnat masquerade")
        if net.masquerade:
            post.append(f"\t\t{ip} saddr {sub} {ip} daddr != {sub} masquerade")
    lines = [
        head.rstrip("\n"),
        f"flush table {family} {TABLE}",
        f"table {family} {TABLE} {{",
        "\tchain prerouting {",
        "\t\ttype nat hook prerouting priority dstnat; policy accept;",
        "\t\tfib daddr type local jump published",
        "\t}",
        "\tchain output {",
        "\t\ttype nat hook output priority -100; policy accept;",
        "\t\tfib daddr type local jump published",
        "\t}",
        "\tchain published {",
        *dnat,
        "\t}",
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        *post,
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _nft() -> str:
    # A unit's PATH may lack /usr/sbin.
    path = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    if path is None:
        raise Unsupported("nft (nftables) is not installed: published ports and masquerade need it")
    return path


def load(script: str) -> None:
    """Apply `script` in one transaction: all of it, or (on any error) none of it."""
    proc = subprocess.run([_nft(), "-f", "-"], input=script, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BerthError(f"nftables refused Berth's ruleset: {proc.stderr.strip()}")


def current() -> str | None:
    """Berth's tables as the kernel has them now (None: both absent)."""
    out = []
    for family in (FAMILY, FAMILY6):
        proc = subprocess.run([_nft(), "list", "table", family, TABLE], capture_output=True, text=True)
        if proc.returncode == 0:
            out.append(proc.stdout)
    return "".join(out) or None
