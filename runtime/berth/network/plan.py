"""plan(desired, observed) -> actions for networks. Pure: every refusal happens here, before
anything changes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from berth.errors import Conflict
from berth.network.model import IPNetwork, Network, overlapping
from berth.plan import Action


@dataclass(frozen=True)
class HostView:
    """What the host has now, as far as a network plan cares."""

    networks: dict[str, Network]
    links: set[str]
    routes: list[IPNetwork]  # routes of the host (both families), Berth's own bridges excluded
    users: dict[str, list[str]] = field(default_factory=dict)  # network -> containers using it


def plan_create(net: Network, host: HostView) -> list[Action]:
    """Create `net`; nothing if an identical network exists; Conflict for any clash."""
    existing = host.networks.get(net.name)
    if existing is not None:
        if existing == net:
            return []
        subnets = ", ".join(str(s) for s in existing.subnets)
        raise Conflict(
            f"network {net.name} exists with other settings ({subnets}, bridge {existing.bridge}): "
            "remove it first",
            existing=existing.to_json(),
        )
    others = [n for n in host.networks.values() if n.name != net.name]
    for subnet in net.subnets:
        clash = overlapping(subnet, [s for n in others for s in n.subnets])
        if clash:
            owner = next(n.name for n in others if any(str(s) in clash for s in n.subnets))
            raise Conflict(f"subnet {subnet} overlaps network {owner} ({clash[0]})", subnet=str(subnet))
        routed = overlapping(subnet, host.routes)
        if routed:
            raise Conflict(
                f"subnet {subnet} collides with a route of this host ({', '.join(routed)})",
                subnet=str(subnet),
                routes=routed,
            )
    if net.bridge in host.links or any(n.bridge == net.bridge for n in others):
        raise Conflict(
            f"bridge name {net.bridge} is taken by an existing network interface", bridge=net.bridge
        )
    return [Action("create-network", net.name, net.to_json())]


def plan_remove(name: str, host: HostView) -> list[Action]:
    if name not in host.networks:
        return []
    users = host.users.get(name, [])
    if users:
        raise Conflict(
            f"network {name} is in use by container(s) {', '.join(sorted(users))}: remove them first",
            containers=sorted(users),
        )
    return [Action("remove-network", name, {"bridge": host.networks[name].bridge})]


def _differences(existing: Network, desired: Network) -> list[str]:
    old, new = existing.to_json(), desired.to_json()
    keys = sorted(set(old) | set(new))  # subnet6 and gateway6 appear only on IPv6 networks
    return [f"{key} {old.get(key)} -> {new.get(key)}" for key in keys if old.get(key) != new.get(key)]


def plan_network(name: str, desired: Network | None, host: HostView) -> list[Action]:
    """Take the host's network `name` to `desired` (None: absent), declaratively.

    Nothing when it is already so. A change of masquerade alone is made live, even while
    containers use the network (it is one nftables rule). Any other change (subnet, gateway,
    bridge) replaces the network, which only a network that no container uses can be: the
    addresses of its containers come from the subnet and their veths hang on the bridge.
    """
    if desired is None:
        return plan_remove(name, host)
    if desired.name != name:
        raise AssertionError(f"a plan for network {name} got the spec of {desired.name}")
    existing = host.networks.get(name)
    if existing is None:
        return plan_create(desired, host)
    if existing == desired:
        return []
    changes = _differences(existing, desired)
    if replace(existing, masquerade=desired.masquerade) == desired:
        return [Action("update-network", name, {"masquerade": desired.masquerade})]
    users = sorted(host.users.get(name, []))
    if users:
        raise Conflict(
            f"network {name} would change ({'; '.join(changes)}), which re-creates it, but it is in "
            f"use by container(s) {', '.join(users)}: remove them first, or keep its settings",
            containers=users,
            existing=existing.to_json(),
        )
    without = HostView(
        networks={k: v for k, v in host.networks.items() if k != name},
        links=host.links - {existing.bridge},
        routes=host.routes,
        users=host.users,
    )
    removal = [Action("remove-network", name, {"bridge": existing.bridge, "reason": "settings changed"})]
    return removal + plan_create(desired, without)
