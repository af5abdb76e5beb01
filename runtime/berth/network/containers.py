"""The seam between containers and networking: what the container manager and its unit call."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from berth.containers.spec import ContainerSpec
    from berth.network.manager import Attached


def attach_container(spec: ContainerSpec) -> Attached | None:
    """Before the unit starts: the netns to join and /etc/hosts (None: no bridge networking)."""
    if spec.network != "bridge":
        return None
    from berth.network.manager import Networks

    return Networks().attach(spec.name, spec.hostname, spec.networks, spec.ports)


def detach_container(name: str) -> bool:
    """After the container stopped (or instead of it, on rm): links, addresses, leases, rules."""
    from berth.network import state

    if state.attachments().get(name) is None and not state.netns_path(name).exists():
        return False  # no networking (as Networks.detach finds first), without importing it all
    from berth.network.manager import Networks

    return Networks().detach(name)


def network_hooks(spec: ContainerSpec) -> dict[str, list[list[str]]]:
    """Unit commands that keep networking in step with the container's process.

    ExecStopPost detaches whenever the process ends (a crash included), so no port rule points
    at a dead container; a restart by systemd (Restart=) then attaches again in ExecStartPre.
    Without a restart policy the start needs no ExecStartPre: `berth start` attached already.
    """
    if spec.network != "bridge":
        return {}
    import sys

    hook = [sys.executable, "-m", "berth.network.hook"]
    hooks = {"ExecStopPost": [[*hook, "detach", spec.name]]}
    if spec.restart != "no":
        hooks["ExecStartPre"] = [[*hook, "attach", spec.name]]
    return hooks
