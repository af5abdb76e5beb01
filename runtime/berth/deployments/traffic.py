"""The seam to networking's traffic switch (berth.network.manager.Networks.switch).

A deployment's service ports are published by no container spec: the deployment points each one
at the container of the revision that serves: all of a revision's ports in one nftables
transaction, so no client sees one port on the new revision and another on the old. New
connections go to the new container from that instant; established ones finish where they started.
Everything the deployments need from networking goes through these few functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from berth.network.ports import PortMapping


def switch_spec(port: PortMapping) -> str:
    """`[HOSTIP:]HOSTPORT/proto`, the form `Networks.switch` takes."""
    return f"{port.host_ip + ':' if port.host_ip else ''}{port.host_port}/{port.protocol}"


def holder(port: PortMapping) -> str | None:
    """The container the port forwards to now (None: not published)."""
    from berth.network import state

    held = state.get_ports().get(port.key)
    return held[1] if held else None


def move(port: PortMapping, container: str) -> dict[str, Any]:
    """Point `port` at `container` (publishing it if nobody holds it); idempotent."""
    from berth.network.manager import Networks

    return Networks().switch(switch_spec(port), container, port.container_port)


def move_all(moves: Sequence[tuple[PortMapping, str]]) -> list[dict[str, Any]]:
    """Point every `(port, container)` at once: one port table write, one nftables transaction."""
    from berth.network.manager import Networks

    return Networks().switch_many([(switch_spec(p), c, p.container_port) for p, c in moves])
