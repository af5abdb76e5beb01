"""sd_notify(3) without libsystemd, and the proxy of `sdnotify: container` containers.

A container that speaks sd_notify itself gets `NOTIFY_SOCKET=/run/notify/notify.sock`: a socket
of the shim's, in a directory bind-mounted read-only into the container. systemd's own socket is
never shown to the container: its PIDs live in another pid namespace, and a `MAINPID=` from
there would name a host process (as root in the container, systemd would believe it). So the
shim tells systemd the container's PID itself (`MAINPID=`, without READY), then relays what the
app says, filtered: READY=1, STATUS=, ERRNO=, EXTEND_TIMEOUT_USEC=, RELOADING=1, STOPPING=1.
MAINPID=, FDSTORE=, WATCHDOG= and everything else are dropped. The relay ends with the first
READY=1 (runc and crun do the same; systemd-nspawn's --notify-ready relays READY and STATUS);
the unit then needs `NotifyAccess=all`, since the relaying shim is no longer its main process.
"""

from __future__ import annotations

import os

from berth.kernel import socket_module

TYPE_CHECKING = False  # not `from typing import`: importing typing costs the shim ms at every start
if TYPE_CHECKING:
    from typing import Any

# What a container may tell systemd through the relay (sd_notify(3) assignments).
RELAYED = ("READY=", "STATUS=", "ERRNO=", "EXTEND_TIMEOUT_USEC=", "RELOADING=", "STOPPING=")
DATAGRAM_MAX = 4096  # systemd reads at most this much of one notification
TARGET_DIR = "/run/notify"
TARGET = f"{TARGET_DIR}/notify.sock"


def _notify_socket() -> Any:
    """A datagram socket connected to systemd's $NOTIFY_SOCKET; None when there is none."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return None
    if address.startswith("@"):
        address = "\0" + address[1:]
    sockets = socket_module()
    sock = sockets.socket(sockets.AF_UNIX, sockets.SOCK_DGRAM | sockets.SOCK_CLOEXEC)
    try:
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def sd_notify(message: str) -> bool:
    """Send `message`; return False when not run by systemd with a notify socket."""
    sock = _notify_socket()
    if sock is None:
        return False
    try:
        sock.sendall(message.encode())
    finally:
        sock.close()
    return True


def sd_notify_barrier(timeout_ms: int = 5000) -> bool:
    """Wait until systemd has handled every notification sent before (sd_notify_barrier(3)).

    The write end of a pipe goes along with `BARRIER=1`; systemd closes it once it has read the
    datagrams queued before it, and the read end then reports POLLHUP. systemd before 246 knows
    no barrier but closes unexpected descriptors all the same, after the same point.
    Hand-written: libsystemd is not a dependency of the shim, and this is a dozen lines.
    """
    sock = _notify_socket()
    if sock is None:
        return False
    import select
    import sys

    sockets = socket_module()
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        fds = write_end.to_bytes(4, sys.byteorder)
        sock.sendmsg([b"BARRIER=1\n"], [(sockets.SOL_SOCKET, sockets.SCM_RIGHTS, fds)])
        os.close(write_end)
        write_end = -1
        poller = select.poll()
        poller.register(read_end, select.POLLHUP)
        return bool(poller.poll(timeout_ms))
    finally:
        sock.close()
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def filtered(datagram: bytes) -> tuple[str, bool]:
    """The lines of one notification that may reach systemd, and whether it says READY=1."""
    try:
        text = datagram.decode("utf-8")
    except UnicodeDecodeError:
        return "", False
    lines = [line for line in text.split("\n") if line.startswith(RELAYED) and "\0" not in line]
    return "".join(f"{line}\n" for line in lines), "READY=1" in lines


def listen(path: str) -> Any:
    """The container's notify socket at `path` (host side), writable by any uid in the container."""
    sockets = socket_module()
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    try:
        os.unlink(path)  # a previous start's
    except FileNotFoundError:
        pass
    sock = sockets.socket(sockets.AF_UNIX, sockets.SOCK_DGRAM | sockets.SOCK_CLOEXEC)
    sock.bind(path)
    os.chmod(path, 0o666)
    return sock


def relay(sock: Any, pid: int, path: str) -> int:
    """Relay the container's notifications until its READY=1, or until it exits (systemd then
    fails the start and says why); the start timeout is systemd's (TimeoutStartSec)."""
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return 0
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(sock.fileno(), select.POLLIN)
    try:
        while True:
            # The socket before the exit: a READY=1 sent just before the app exited still counts.
            for fd, _ in sorted(poller.poll(), key=lambda event: event[0] == pidfd):
                if fd == pidfd:
                    return 0
                datagram = sock.recv(DATAGRAM_MAX + 1)
                if len(datagram) > DATAGRAM_MAX:
                    continue
                message, ready = filtered(datagram)
                if message:
                    sd_notify(message)
                if ready:
                    return 0
    finally:
        os.close(pidfd)
        sock.close()
        try:
            os.unlink(path)
        except OSError:
            pass
