"""The seam between containers and networking: what the container manager and its unit call."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

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


INTERFACE_FIELDS = ("network", "ifname", "address", "address6", "gateway", "gateway6", "mac")


def interfaces_of(name: str) -> list[dict[str, Any]]:
    """The container's interfaces as `inspect` shows them: empty without a network (or stopped and
    detached); `parked` while they are kept for a restart or a rollback without port rules."""
    from berth.network import state

    record = state.attachments().get(name) or {}
    parked = record.get("status") == "parked"
    rows = [{k: iface.get(k) for k in INTERFACE_FIELDS} for iface in record.get("interfaces", [])]
    return [{**row, "parked": parked} for row in rows]


def restore_networks() -> list[dict[str, Any]]:
    """At boot, before containers start: bridges with their addresses, forwarding, the nftables
    tables from state, and attachments of the previous boot dropped. Nothing to do (and no
    netlink or nft) on a host that never had a network."""
    from berth.network import state

    if not state.networks().names() and not state.attachments().names():
        return []
    from berth.network.manager import Networks

    return Networks().restore()


def park_container(name: str) -> bool:
    """Between a crash and systemd's restart: no port rules, everything else kept for the restart."""
    from berth.network import state

    if state.attachments().get(name) is None:
        return False
    from berth.network.manager import Networks

    return Networks().park(name)


def network_hooks(spec: ContainerSpec) -> dict[str, list[list[str]]]:
    """Unit commands that keep networking in step with the container's process.

    Without a restart policy, ExecStopPost detaches whenever the process ends (a crash
    included), so no port rule points at a dead container. With one, a process that systemd
    is about to start again is only *parked*: its port rules leave the nftables table, but its
    namespace, veth, address and published ports (its own and those a deployment switched to
    it) stay reserved, and ExecStartPre brings the rules back, so the restarted process has the
    same address and every port it had. `berth stop` and `berth rm` detach for good.

    Each hook is behind a shell check that starts Python only when needed: ExecStartPre when the
    container is not attached in this boot already (attached.sh), ExecStopPost when no berth
    command that stops the unit will park or detach it itself (unless_berth.sh, `stopping_marker`).
    """
    if spec.network != "bridge":
        return {}
    import sys

    hook = [sys.executable, "-m", "berth.network.hook"]
    here = Path(__file__).parent
    unless_berth = ["/bin/sh", str(here / "unless_berth.sh"), str(stopping_marker(spec.name))]
    if spec.restart == "no":  # `berth start` attached already: no ExecStartPre needed
        return {"ExecStopPost": [[*unless_berth, *hook, "detach", spec.name]]}
    policy = spec.restart.partition(":")[0]
    from berth.network import state

    record, netns = state.attachments().path(spec.name), state.netns_path(spec.name)
    attached = ["/bin/sh", str(here / "attached.sh"), str(record), str(netns)]
    return {
        "ExecStartPre": [[*attached, *hook, "attach", spec.name]],
        "ExecStopPost": [[*unless_berth, *hook, "stopped", spec.name, policy]],
    }


def stopping_marker(name: str) -> Path:
    """Where a berth command stopping container `name` puts its PID while it does (the unit's
    ExecStopPost then leaves parking or detaching to it)."""
    from berth.containers.paths import ContainerPaths

    return ContainerPaths.of(name).run / "stopping"


def restart_follows(policy: str, service_result: str) -> bool:
    """Whether systemd's Restart=`policy` starts the unit again after a stop with this result.

    `service_result` is $SERVICE_RESULT of ExecStopPost ("success" for a clean exit or a stop).
    A manual stop looks like a success here; `berth stop` detaches after it anyway. What this
    cannot see is the start limit of on-failure:N: the last crash parks, and the reservation
    stays until `berth start|stop|rm` or the next boot.
    """
    if policy == "always":
        return True
    if policy == "on-failure":
        return service_result != "success"
    return False
