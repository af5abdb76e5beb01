"""Names, paths and addresses of a lab, all derived from its name and state dir."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from berth.errors import InvalidInput
from berth.network.links import address_mac

DEFAULT_STATE_DIR = Path("/var/lib/berth-lab")
# Lab subnets are /24s carved from this documented private range. Lab hosts get no default
# route, so nothing they send can leave the machine.
LAB_SUPERNET = ipaddress.IPv4Network("10.251.0.0/16")
FIRST_HOST_OCTET = 11
MAX_HOSTS = 32

_LAB_NAME = re.compile(r"^[a-z][a-z0-9]{0,7}$")


def state_root() -> Path:
    return Path(os.environ.get("BERTH_LAB_STATE_DIR") or DEFAULT_STATE_DIR)


def validate_lab_name(name: str) -> str:
    """Lab names end up in interface names, which the kernel caps at 15 bytes."""
    if not _LAB_NAME.match(name):
        raise InvalidInput(
            f"invalid lab name {name!r}: use 1-8 lowercase letters and digits, starting with a letter"
        )
    return name


@dataclass(frozen=True)
class LabPaths:
    name: str
    root: Path

    @property
    def dir(self) -> Path:
        return self.root / self.name

    @property
    def state_file(self) -> Path:
        return self.dir / "lab.json"

    @property
    def lock_file(self) -> Path:
        return self.root / f".{self.name}.lock"

    @property
    def private_key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.yml"

    @property
    def bridge(self) -> str:
        return f"bbr-{self.name}"

    def host_dir(self, host: str) -> Path:
        return self.dir / "hosts" / host


def host_name(lab: str, index: int) -> str:
    return f"{lab}-{index}"


def host_veth(lab: str, index: int) -> tuple[str, str]:
    """(machine end, host end) of a host's veth pair; the host end is renamed eth0 inside."""
    return f"bv-{lab}-{index}", f"bp-{lab}-{index}"


def host_mac(address: str) -> str:
    """The MAC address of a namespace host's eth0, derived from its IPv4 address.

    A reboot makes the host's veth pair again; with a new random MAC, every other host that had
    talked to it kept sending to the old one (its neighbour entry STALE, then DELAY and PROBE:
    about 8 s of silence) and requests from them timed out after a reboot. The same address now
    always comes with the same MAC. 02:6c is locally administered unicast ("l" for lab), apart
    from the containers' 02:62 (berth.network.links.container_mac); VM hosts get theirs from
    lab/vm.py.
    """
    return address_mac(0x6C, address)


def host_address(subnet: ipaddress.IPv4Network, index: int) -> ipaddress.IPv4Interface:
    return ipaddress.IPv4Interface(f"{subnet[FIRST_HOST_OCTET - 1 + index]}/{subnet.prefixlen}")


def gateway_address(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Interface:
    return ipaddress.IPv4Interface(f"{subnet[1]}/{subnet.prefixlen}")
