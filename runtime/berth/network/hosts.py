"""/etc/hosts of a container on networks: itself, its peers on every network it shares, the gateway.

The file is bind-mounted into the container, so a later update must write the same inode in
place (a rename would leave the container reading the old file).
"""

from __future__ import annotations

import os
from pathlib import Path

GATEWAY_NAME = "host.berth.internal"


def render(
    hostname: str,
    name: str,
    own: list[str],
    peers: list[tuple[str, str, str]],
    gateways: list[str],
) -> str:
    """`own`: the container's addresses; `peers`: (address, name, hostname) of the others;
    `gateways`: the host's addresses on the first network (IPv4, IPv6)."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    aliases = " ".join(dict.fromkeys([hostname, name]))
    lines += [f"{addr}\t{aliases}" for addr in own] or [f"127.0.1.1\t{aliases}"]
    lines += [f"{gateway}\t{GATEWAY_NAME}" for gateway in gateways]
    seen = set()
    for addr, peer, peer_host in sorted(peers, key=lambda p: (p[1], p[0])):
        if (addr, peer) in seen:
            continue
        seen.add((addr, peer))
        lines.append(f"{addr}\t{' '.join(dict.fromkeys([peer, peer_host]))}")
    return "\n".join(lines) + "\n"


def rewrite_in_place(path: Path, text: str) -> None:
    """Replace the content of `path` keeping its inode (it is bind-mounted into a container)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        data = text.encode()
        os.pwrite(fd, data, 0)  # never an empty file in between, unlike truncate-then-write
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
