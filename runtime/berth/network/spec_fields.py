"""The networking fields of a container spec: `network`, `networks`, `ports`, canonicalised.

`network` is a mode (`none`, `host`, `bridge`: the default network) or a network's name (which
means bridge mode on that network); `networks` lists more networks (eth0 is the first); `ports`
needs bridge mode: a published port forwards to the container's address on its first network.
"""

from __future__ import annotations

from typing import Any

from berth.errors import InvalidInput
from berth.network.model import BRIDGE_MODE, DEFAULT_NETWORK, validate_network_name
from berth.network.ports import PortMapping, parse_ports

MODES = ("none", "host", BRIDGE_MODE)


def network_fields(doc: dict[str, Any]) -> tuple[str, tuple[str, ...], tuple[PortMapping, ...]]:
    mode = doc.get("network")
    # `bridge` in a list of networks is the default network, as `--network web,bridge` reads
    names = [DEFAULT_NETWORK if n == BRIDGE_MODE else str(n) for n in doc.get("networks") or []]
    if mode is None:
        mode = BRIDGE_MODE if names else "none"
    if mode not in MODES:
        names = [validate_network_name(mode), *names]
        mode = BRIDGE_MODE
    if mode == BRIDGE_MODE:
        names = names or [DEFAULT_NETWORK]
    elif names:
        raise InvalidInput(f"spec field networks: a container with network {mode} joins no networks")
    for name in names:
        validate_network_name(name)
    if len(set(names)) != len(names):
        raise InvalidInput(f"spec field networks: {names} names a network twice")
    ports = parse_ports(list(doc.get("ports") or []))
    if ports and mode != BRIDGE_MODE:
        raise InvalidInput(
            f"spec field ports: publishing ports needs a network (bridge or a name), not {mode}"
        )
    return mode, tuple(names), ports
