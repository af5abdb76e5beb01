"""sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET."""

from __future__ import annotations

import os

from berth.kernel import socket_module


def sd_notify(message: str) -> bool:
    """Send `message`; return False when not run by systemd with a notify socket."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    sockets = socket_module()
    sock = sockets.socket(sockets.AF_UNIX, sockets.SOCK_DGRAM | sockets.SOCK_CLOEXEC)
    try:
        sock.connect(address)
        sock.sendall(message.encode())
    finally:
        sock.close()
    return True
