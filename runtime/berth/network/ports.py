"""Published ports: `[HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]`, parsed, canonicalised, compared.

A published port is a DNAT rule in Berth's nftables table, not a listening socket, so the
kernel would not notice two containers (or a container and a host daemon) claiming one port:
Berth checks both itself, before anything changes.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any

from berth.errors import Conflict, InvalidInput

PROTOCOLS = ("tcp", "udp")
_SPEC = re.compile(
    r"^(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?P<host>[0-9]{1,5}):(?P<ctr>[0-9]{1,5})(?:/(?P<proto>[a-z]+))?$"
)


@dataclass(frozen=True, order=True)
class PortMapping:
    """One published port; `host_ip` None means every address of the host."""

    protocol: str
    host_port: int
    container_port: int
    host_ip: str | None = None

    def __str__(self) -> str:
        ip = f"{self.bracketed_ip}:" if self.host_ip else ""
        return f"{ip}{self.host_port}:{self.container_port}/{self.protocol}"

    @property
    def bracketed_ip(self) -> str:
        """The host address as it is written before a port: [fd00::1] for IPv6."""
        return f"[{self.host_ip}]" if self.host_ip and ":" in self.host_ip else self.host_ip or ""

    @property
    def key(self) -> str:
        """What identifies a published port on the host: address, port and protocol."""
        return f"{self.bracketed_ip or '*'}:{self.host_port}/{self.protocol}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "protocol": self.protocol,
            "host_port": self.host_port,
            "container_port": self.container_port,
        }
        if self.host_ip:
            out["host_ip"] = self.host_ip
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PortMapping:
        return cls(doc["protocol"], int(doc["host_port"]), int(doc["container_port"]), doc.get("host_ip"))

    def clashes(self, other: PortMapping) -> bool:
        """Same port and protocol on an overlapping address (a wildcard overlaps every address)."""
        if (self.protocol, self.host_port) != (other.protocol, other.host_port):
            return False
        return self.host_ip is None or other.host_ip is None or self.host_ip == other.host_ip


def _port(text: str, what: str, spec: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise InvalidInput(f"port spec {spec!r}: {what} {value} is not between 1 and 65535")
    return value


def _host_ip(text: str, spec: str) -> str:
    try:
        addr = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        raise InvalidInput(f"port spec {spec!r}: {text!r} is not an IP address") from None
    if isinstance(addr, ipaddress.IPv6Address) and (addr.is_loopback or addr.is_link_local):
        raise InvalidInput(
            f"port spec {spec!r}: {addr} cannot be forwarded to a container (the kernel never routes "
            "IPv6 loopback or link-local traffic off its interface): publish on another address"
        )
    if isinstance(addr, ipaddress.IPv6Address) and not text.startswith("["):
        raise InvalidInput(f"port spec {spec!r}: write an IPv6 host address in brackets, [{addr}]")
    if addr.is_unspecified:
        return ""
    if addr.is_multicast:
        raise InvalidInput(f"port spec {spec!r}: {addr} is a multicast address")
    return str(addr)


def parse_port(spec: Any) -> PortMapping:
    """A port from the CLI form (a string) or the spec form (an object), checked and canonical."""
    if isinstance(spec, dict):
        try:
            ip = str(spec.get("host_ip") or "")
            if ":" in ip and not ip.startswith("["):
                ip = f"[{ip}]"
            text = (f"{ip}:" if ip else "") + (
                f"{int(spec['host_port'])}:{int(spec['container_port'])}/{spec.get('protocol', 'tcp')}"
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(
                f"port {spec!r}: expected host_port, container_port and optional host_ip, protocol"
            ) from None
        return parse_port(text)
    if not isinstance(spec, str):
        raise InvalidInput(f"port {spec!r}: expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]")
    match = _SPEC.match(spec.strip())
    if not match:
        raise InvalidInput(f"port spec {spec!r}: expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]")
    proto = match["proto"] or "tcp"
    if proto not in PROTOCOLS:
        raise InvalidInput(f"port spec {spec!r}: protocol {proto!r} is not tcp or udp")
    host_ip = _host_ip(match["ip"], spec) if match["ip"] else ""
    return PortMapping(
        proto,
        _port(match["host"], "host port", spec),
        _port(match["ctr"], "container port", spec),
        host_ip or None,
    )


def parse_ports(specs: list[Any]) -> tuple[PortMapping, ...]:
    """Every port of one container, refusing two that claim the same host port."""
    ports = sorted(parse_port(s) for s in specs)
    for i, a in enumerate(ports):
        for b in ports[i + 1 :]:
            if a.clashes(b):
                raise InvalidInput(f"ports {a} and {b} publish the same host port")
    return tuple(ports)


def find_clash(port: PortMapping, held: dict[str, tuple[PortMapping, str]], owner: str) -> str | None:
    """The container other than `owner` that holds a port clashing with `port`, if any."""
    for other, holder in held.values():
        if holder != owner and port.clashes(other):
            return holder
    return None


def check_host_free(port: PortMapping) -> None:
    """Refuse a port a process on the host listens on: the DNAT rule would hide it silently.

    A test bind answers both questions the kernel can: is the port taken (EADDRINUSE), and is
    the host address one of this host's (EADDRNOTAVAIL).
    """
    if port.host_ip:
        _try_bind(port, ipaddress.ip_address(port.host_ip).version, port.host_ip)
        return
    _try_bind(port, 4, "0.0.0.0")
    if socket.has_ipv6:  # a wildcard port is published on both families
        _try_bind(port, 6, "::")


def _try_bind(port: PortMapping, version: int, address: str) -> None:
    kind = socket.SOCK_STREAM if port.protocol == "tcp" else socket.SOCK_DGRAM
    try:
        sock = socket.socket(socket.AF_INET6 if version == 6 else socket.AF_INET, kind)
    except OSError as exc:  # a kernel without IPv6: nothing can listen there
        if version == 6 and exc.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
            return
        raise
    with sock:
        if kind == socket.SOCK_STREAM:  # a closed socket's TIME_WAIT is no listener
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if version == 6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((address, port.host_port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Conflict(
                    f"port {port.host_port}/{port.protocol} is in use on the host"
                    + (f" at {port.host_ip}" if port.host_ip else "")
                    + ": a process listens on it",
                    port=str(port),
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise InvalidInput(f"port {port}: {port.host_ip} is not an address of this host") from None
            raise
