"""Berth's own nftables table (`table ip berth`): NAT for networks and published ports.

The table is rendered whole from Berth's state and loaded with one `nft -f -`, which the kernel
applies as ONE transaction: the table is created if missing, flushed (its rules only: the base
chains stay registered) and filled again. Nothing outside `table ip berth` is ever read, flushed
or rewritten. A published port moving to another container (the traffic switch) is such a
reload: new connections see the new rule at once, and established ones keep the NAT binding
conntrack recorded for them, so they finish where they started.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence

from berth.errors import BerthError, Unsupported
from berth.network.model import Network
from berth.network.ports import PortMapping

TABLE = "berth"
FAMILY = "ip"


def render(networks: Iterable[Network], published: Sequence[tuple[PortMapping, str]]) -> str:
    """The nft script that makes Berth's table exactly this; with nothing to hold, it deletes it.

    `published` pairs each port with the container address it forwards to.
    """
    nets = sorted(networks, key=lambda n: n.name)
    head = f"table {FAMILY} {TABLE} {{}}\n"
    if not nets and not published:
        return head + f"delete table {FAMILY} {TABLE}\n"
    dnat = []
    # Rules bound to one address first, so they win over a wildcard on another address.
    for port, addr in sorted(published, key=lambda pa: (pa[0].host_ip is None, pa[0])):
        match = f"ip daddr {port.host_ip} " if port.host_ip else ""
        dnat.append(
            f"\t\t{match}{port.protocol} dport {port.host_port} "
            f'dnat to {addr}:{port.container_port} comment "{port.key}"'
        )
    post = []
    for net in nets:
        br, sub = f'"{net.bridge}"', str(net.subnet)
        # The host itself on 127.0.0.1 (route_localnet on the bridge): the container must answer
        # a routable address.
        post.append(f"\t\toifname {br} ip saddr 127.0.0.0/8 masquerade")
        # Hairpin: a container reaching a published port that leads back into its own network.
        post.append(f"\t\toifname {br} ip saddr {sub} ct status dnat masquerade")
        if net.masquerade:
            post.append(f"\t\tip saddr {sub} ip daddr != {sub} masquerade")
    lines = [
        head.rstrip("\n"),
        f"flush table {FAMILY} {TABLE}",
        f"table {FAMILY} {TABLE} {{",
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
    """Berth's table as the kernel has it now (None: absent)."""
    proc = subprocess.run([_nft(), "list", "table", FAMILY, TABLE], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None
