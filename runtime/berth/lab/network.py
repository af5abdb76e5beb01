"""The lab's switch: one bridge on the machine, one veth pair per host (pyroute2's IPRoute).

Only the API common to pyroute2 0.7 (Debian 12) and 0.9 (PyPI) is used.
"""

from __future__ import annotations

import ipaddress
import socket

from berth.errors import Conflict, LabError
from berth.network.links import index as _index
from berth.network.links import iproute as _iproute  # the runtime's: IPRoute alone


def link_exists(name: str) -> bool:
    with _iproute() as ip:
        return _index(ip, name) is not None


def used_subnets() -> list[ipaddress.IPv4Network]:
    """Destinations of the machine's IPv4 routes (main table), the default route excepted."""
    nets = []
    with _iproute() as ip:
        for route in ip.get_routes(family=socket.AF_INET, table=254):
            dst = route.get_attr("RTA_DST")
            if dst is not None and route["dst_len"] > 0:
                nets.append(ipaddress.IPv4Network(f"{dst}/{route['dst_len']}", strict=False))
    return nets


def create_bridge(name: str, gateway: ipaddress.IPv4Interface) -> None:
    with _iproute() as ip:
        if _index(ip, name) is not None:
            raise Conflict(f"network interface {name} already exists: is another lab using it?")
        try:
            ip.link("add", ifname=name, kind="bridge")
            index = _index(ip, name)
            ip.addr("add", index=index, address=str(gateway.ip), prefixlen=gateway.network.prefixlen)
            ip.link("set", index=index, state="up")
        except Exception as exc:
            raise LabError(f"cannot create lab bridge {name}: {exc}") from exc


def create_veth(machine_end: str, host_end: str, bridge: str, host_mac: str) -> None:
    """A host's pair: the machine end on the lab's bridge, up; the host end with its fixed MAC."""
    with _iproute() as ip:
        for name in (machine_end, host_end):
            if _index(ip, name) is not None:
                raise Conflict(f"network interface {name} already exists")
        try:
            ip.link("add", ifname=machine_end, kind="veth", peer=host_end)
            ip.link("set", index=_index(ip, host_end), address=host_mac)
            ip.link("set", index=_index(ip, machine_end), master=_index(ip, bridge), state="up")
        except Exception as exc:
            raise LabError(f"cannot create veth pair {machine_end}/{host_end}: {exc}") from exc


def create_tap(name: str, bridge: str) -> None:
    """A persistent tap device on the lab's bridge, for one VM host's NIC (qemu attaches to it).

    Made with `ip tuntap` (no packet-info header, as qemu expects): pyroute2's tuntap support
    differs between 0.7 and 0.9.
    """
    import subprocess

    if link_exists(name):
        raise Conflict(f"network interface {name} already exists")
    proc = subprocess.run(["ip", "tuntap", "add", "dev", name, "mode", "tap"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"cannot create tap device {name}: {proc.stderr.strip()}")
    with _iproute() as ip:
        try:
            ip.link("set", index=_index(ip, name), master=_index(ip, bridge), state="up")
        except Exception as exc:
            ip.link("del", index=_index(ip, name))
            raise LabError(f"cannot put tap device {name} on bridge {bridge}: {exc}") from exc


def move_to_netns(name: str, pid: int) -> None:
    with _iproute() as ip:
        index = _index(ip, name)
        if index is None:
            raise LabError(f"veth end {name} vanished before it could be moved into the host")
        ip.link("set", index=index, net_ns_pid=pid)


def delete_link(name: str) -> bool:
    with _iproute() as ip:
        index = _index(ip, name)
        if index is None:
            return False
        ip.link("del", index=index)
        return True


def links_with_prefix(prefix: str) -> list[str]:
    with _iproute() as ip:
        names = [link.get_attr("IFLA_IFNAME") for link in ip.get_links()]
    return sorted(n for n in names if n and n.startswith(prefix))
