"""Network operations: create, remove, list; attach and detach containers; switch a port; restore.

Every operation runs under the network lock (`state.locked`), observes, plans (refusing bad
input before anything changes) and applies through `berth.plan.apply`. Kernel objects are only
ever created after the record that names them is written, so `detach` can always find and
remove what a crashed attach left.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth import plan as plans
from berth.errors import Conflict, InvalidInput, NotFound
from berth.network import hosts, links, nft, state
from berth.network import netns as ns
from berth.network.ipam import allocate
from berth.network.model import (
    DEFAULT_BRIDGE,
    DEFAULT_NETWORK,
    DEFAULT_POOL,
    DEFAULT_PREFIX,
    Network,
    free_bridge_name,
    free_subnet,
    make_network,
    overlapping,
    parse_subnet,
    split_subnets,
    validate_network_name,
)
from berth.network.plan import HostView, plan_create, plan_network, plan_remove
from berth.network.ports import PortMapping, check_host_free, find_clash, parse_port
from berth.network.request import NetworkRequest
from berth.plan import Action


@dataclass
class NetworkOutcome:
    """What `converge` planned, what it applied, and the network before and after (None: absent)."""

    planned: list[Action]
    applied: list[Action]
    before: Network | None
    after: Network | None
    containers: list[str]  # the containers that use the network


@dataclass(frozen=True)
class Attached:
    """What a container's start needs: the netns to join and its /etc/hosts."""

    netns_path: str
    hosts: str
    addresses: dict[str, str]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _boot() -> str:
    from berth.host import boot_identity

    return boot_identity()


# -- observing ----------------------------------------------------------------------------------
def _users() -> dict[str, list[str]]:
    """network -> containers that name it in their spec (attached or not)."""
    from berth.containers import records

    users: dict[str, list[str]] = {}
    for name in records.names():
        record = records.get(name) or {}
        for net in (record.get("spec") or {}).get("networks") or []:
            users.setdefault(net, []).append(name)
    for name in state.attachments().names():
        for iface in (state.attachments().get(name) or {}).get("interfaces", []):
            if name not in users.setdefault(iface["network"], []):
                users[iface["network"]].append(name)
    return users


def _host_view(ip: Any) -> HostView:
    nets = state.all_networks()
    return HostView(
        networks=nets,
        links=links.link_names(ip),
        routes=links.routed_subnets(ip, {n.bridge for n in nets.values()}),
        users=_users(),
    )


def desired_network(
    name: str,
    subnet: str | None,
    gateway: str | None,
    bridge: str | None,
    masquerade: bool,
    view: HostView,
    subnet6: str | None = None,
    gateway6: str | None = None,
) -> Network:
    """The network a create asks for, the free subnet and bridge name picked when not given.

    `subnet` and `subnet6` may each be of either family (one per family). An existing network
    keeps the subnet of a family not given; a new one given only an IPv6 subnet is IPv6-only,
    and one given none gets a free IPv4 /24.
    """
    validate_network_name(name)
    taken = [t for n in view.networks.values() if n.name != name for t in n.subnets] + view.routes
    existing = view.networks.get(name)
    v4, v6 = split_subnets([parse_subnet(t) for t in (subnet, subnet6) if t is not None])
    if existing is not None:
        v4, v6 = v4 or existing.subnet, v6 or existing.subnet6
    elif v4 is None and v6 is None:
        first = _first_subnet()
        v4 = first if name == DEFAULT_NETWORK and not overlapping(first, taken) else free_subnet(taken)
    if bridge is None:
        if existing is not None:
            bridge = existing.bridge
        elif name == DEFAULT_NETWORK:
            bridge = DEFAULT_BRIDGE
        else:
            bridge = free_bridge_name(view.links | {n.bridge for n in view.networks.values()})
    return make_network(name, v4, bridge, gateway, masquerade, v6, gateway6)


def _first_subnet() -> ipaddress.IPv4Network:
    return next(DEFAULT_POOL.subnets(new_prefix=DEFAULT_PREFIX))


# An attachment's status: `attaching` (kernel objects being made), `attached`, or `parked`: the
# process died and systemd will restart it, so its rules are out of the table but its netns,
# address and ports are kept for the restart.
ATTACHED, PARKED = "attached", "parked"


# -- the nftables table, always rendered whole from state -------------------------------------------
def _published() -> list[tuple[PortMapping, str]]:
    """(port, container address) for every published port, once per family the container has."""
    out = []
    store = state.attachments()
    for port, holder in state.get_ports().values():
        record = store.get(holder)
        if not record or not record.get("interfaces") or record.get("status") == PARKED:
            continue
        first = record["interfaces"][0]  # a published port forwards to the first network
        for key in ("address", "address6"):
            if first.get(key):
                out.append((port, first[key].split("/")[0]))
    return out


def sync_nft() -> None:
    nft.load(nft.render(state.all_networks().values(), _published(), ipv6=links.has_ipv6()))


# -- networks -----------------------------------------------------------------------------------
class Networks:
    def create(
        self,
        name: str,
        subnet: str | None = None,
        gateway: str | None = None,
        bridge: str | None = None,
        masquerade: bool = True,
        check: bool = False,
        subnet6: str | None = None,
        gateway6: str | None = None,
    ) -> tuple[Network, list[Action]]:
        with state.locked(), links.iproute() as ip:
            view = _host_view(ip)
            net = desired_network(name, subnet, gateway, bridge, masquerade, view, subnet6, gateway6)
            actions = plan_create(net, view)
            if check:
                return net, actions
            return net, plans.apply(actions, {"create-network": lambda a: self._create(ip, net)})

    def _create(self, ip: Any, net: Network) -> None:
        record = {**net.to_json(), "created_at": _now()}
        state.networks().put(net.name, record)
        try:
            links.ensure_bridge(ip, net.bridge, net.gateway_interfaces)
            links.enable_forwarding(net.bridge, ipv6=net.subnet6 is not None)
            sync_nft()
        except BaseException:
            state.networks().delete(net.name)
            links.delete_link(ip, net.bridge)
            raise

    def remove(self, name: str, check: bool = False) -> list[Action]:
        validate_network_name(name)
        with state.locked(), links.iproute() as ip:
            view = _host_view(ip)
            if name not in view.networks:
                raise NotFound(f"no network named {name!r}")
            actions = plan_remove(name, view)
            if check:
                return actions
            return plans.apply(actions, {"remove-network": lambda a: self._remove(ip, view.networks[name])})

    def _remove(self, ip: Any, net: Network) -> None:
        state.networks().delete(net.name)  # first: a crash after it leaves only a bridge to sweep
        sync_nft()
        links.delete_link(ip, net.bridge)
        state.put_leases(net.name, {})

    def _update(self, net: Network) -> None:
        """A change that leaves bridge, subnet and gateway as they are (masquerade): record, nft."""
        before = state.networks().get(net.name) or {}
        state.networks().put(net.name, {**before, **net.to_json()})
        try:
            sync_nft()
        except BaseException:
            state.networks().put(net.name, before)
            raise

    def converge(self, request: NetworkRequest, check: bool = False) -> NetworkOutcome:
        """Take network `request.name` to the requested state: plan(desired, observed), then apply.

        The plan refuses (Conflict, InvalidInput) before anything changes, in check mode too.
        """
        with state.locked(), links.iproute() as ip:
            view = _host_view(ip)
            existing = view.networks.get(request.name)
            desired = None
            if request.state == "present":
                desired = desired_network(
                    request.name,
                    request.subnet,
                    request.gateway,
                    request.bridge,
                    request.masquerade,
                    view,
                    request.subnet6,
                    request.gateway6,
                )
            actions = plan_network(request.name, desired, view)
            outcome = NetworkOutcome(actions, [], existing, desired, sorted(view.users.get(request.name, [])))
            if check:
                return outcome

            def remove(_: Action) -> None:
                assert existing is not None
                self._remove(ip, existing)

            def create(_: Action) -> None:
                assert desired is not None
                self._create(ip, desired)

            def update(_: Action) -> None:
                assert desired is not None
                self._update(desired)

            handlers = {"remove-network": remove, "create-network": create, "update-network": update}
            outcome.applied = plans.apply(actions, handlers)
            return outcome

    def ls(self) -> list[dict[str, Any]]:
        users = _users()
        out = []
        for name, net in sorted(state.all_networks().items()):
            record = state.networks().get(name) or {}
            out.append(
                {
                    **net.to_json(),
                    "created_at": record.get("created_at"),
                    "containers": sorted(users.get(name, [])),
                }
            )
        return out

    def inspect(self, name: str) -> dict[str, Any]:
        validate_network_name(name)
        record = state.networks().get(name)
        if record is None:
            raise NotFound(f"no network named {name!r}")
        attached = []
        for cname in state.attachments().names():
            for iface in (state.attachments().get(cname) or {}).get("interfaces", []):
                if iface["network"] == name:
                    attached.append({"container": cname, **iface})
        ports = [
            {"port": str(p), "key": k, "container": c}
            for k, (p, c) in sorted(state.get_ports().items())
            if any(a["container"] == c for a in attached)
        ]
        return {
            **record,
            "containers": sorted(_users().get(name, [])),
            "attached": attached,
            "leases": state.get_leases(name),
            "ports": ports,
        }

    def _network(self, ip: Any, name: str) -> Network:
        """A network a container asks for; the default one is created on first use."""
        net = state.all_networks().get(name)
        if net is not None:
            return net
        if name != DEFAULT_NETWORK:
            raise NotFound(f"no network named {name!r}: create it with `berth network create {name}`")
        view = _host_view(ip)
        net = desired_network(name, None, None, None, True, view)
        plans.apply(plan_create(net, view), {"create-network": lambda a: self._create(ip, net)})
        return net

    # -- containers -----------------------------------------------------------------------------
    def attach(
        self, container: str, hostname: str, networks: Sequence[str], ports: Sequence[PortMapping]
    ) -> Attached:
        """Give `container` a netns with one ethN per network, its addresses and published ports.

        Idempotent for this boot (a restart by systemd runs it again from ExecStartPre).
        """
        path = state.netns_path(container)
        with state.locked():
            record = state.attachments().get(container)
            if record is not None:
                live = record.get("boot") == _boot() and ns.exists(path)
                if live and record.get("status") == ATTACHED:
                    return self._attached(container, record)
                if live and record.get("status") == PARKED:  # restarted: same address, same ports
                    return self._unpark(container, record)  # state and nftables: no netlink
            with links.iproute() as ip:
                return self._attach_new(ip, container, hostname, networks, ports, stale=record is not None)

    def _attach_new(
        self,
        ip: Any,
        container: str,
        hostname: str,
        networks: Sequence[str],
        ports: Sequence[PortMapping],
        stale: bool,
    ) -> Attached:
        """A new attachment, under the state lock (`stale`: remove a dead one first). Only this
        path talks netlink: a restart after a crash only unparks (state and nftables), so the
        ExecStartPre hook of a `restart: always` container never imports pyroute2."""
        path = state.netns_path(container)
        if stale:
            self._detach(ip, container)  # left by a crash or by the previous boot
        nets = [self._network(ip, n) for n in networks]
        held = state.get_ports()
        for port in ports:
            _check_family(port, nets[0])
            holder = find_clash(port, held, container)
            if holder is not None:
                raise Conflict(f"port {port.key} is already published by container {holder}", port=str(port))
            check_host_free(port)
        interfaces = []
        for i, net in enumerate(nets):
            taken = state.get_leases(net.name)
            token = _token(container, net.name)
            iface: dict[str, Any] = {
                "network": net.name,
                "ifname": f"eth{i}",
                "host_ifname": f"bth{token}",
                "peer_ifname": f"btp{token}",
                "address": None,  # IPv4 (None on an IPv6-only network)
                "gateway": None,
                "bridge": net.bridge,
            }
            for subnet, gateway in net.gateways:
                addr = allocate(subnet, gateway, taken)
                six = "6" if subnet.version == 6 else ""
                iface[f"address{six}"] = f"{addr}/{subnet.prefixlen}"
                iface[f"gateway{six}"] = str(gateway)
            iface["mac"] = links.container_mac(_addresses(iface))
            interfaces.append(iface)
        record = {
            "container": container,
            "hostname": hostname,
            "netns": str(path),
            "interfaces": interfaces,
            "boot": _boot(),
            "status": "attaching",
            "attached_at": _now(),
        }
        actions = [Action("attach", container, {"interfaces": interfaces})]
        if ports:
            actions.append(Action("publish", container, {"ports": [str(p) for p in ports]}))
        try:
            plans.apply(
                actions,
                {
                    "attach": lambda a: self._attach(ip, record, nets),
                    "publish": lambda a: self._publish(container, ports),
                },
            )
            record["status"] = ATTACHED
            state.attachments().put(container, record)
            self._refresh_peers(container)
        except BaseException:
            self._detach(ip, container)
            raise
        return self._attached(container, record)

    def _attach(self, ip: Any, record: dict[str, Any], nets: list[Network]) -> None:
        container = record["container"]
        state.attachments().put(container, record)  # before any kernel object: detach can follow it
        for iface in record["interfaces"]:
            table = state.get_leases(iface["network"])
            for address in _addresses(iface):
                table[address] = container
            state.put_leases(iface["network"], table)
        path = Path(record["netns"])
        for net in nets:  # after a reboot before `berth network restore`: make the bridge now
            if links.ensure_bridge(ip, net.bridge, net.gateway_interfaces):
                links.enable_forwarding(net.bridge, ipv6=net.subnet6 is not None)
        ns.create(path)
        fd = _open(path)
        try:
            for iface in record["interfaces"]:
                links.create_veth(ip, iface["host_ifname"], iface["peer_ifname"], iface["bridge"])
                links.move_to_netns(ip, iface["peer_ifname"], fd)
        finally:
            import os

            os.close(fd)
        with ns.inside(path), links.iproute() as inner:
            for i, iface in enumerate(record["interfaces"]):
                cidrs = [iface[k] for k in ("address", "address6") if iface.get(k)]
                gateways = [iface[k] for k in ("gateway", "gateway6") if iface.get(k)] if i == 0 else []
                links.configure_inside(
                    inner,
                    iface["peer_ifname"],
                    iface["ifname"],
                    [ipaddress.ip_interface(c) for c in cidrs],
                    [ipaddress.ip_address(g) for g in gateways],
                    iface.get("mac"),
                )

    def _publish(self, container: str, ports: Sequence[PortMapping]) -> None:
        table = state.get_ports()
        for port in ports:
            table[port.key] = (port, container)
        state.put_ports(table)
        sync_nft()

    def park(self, container: str) -> bool:
        """The container's process died and systemd restarts it: its port rules go, all else stays."""
        with state.locked():
            record = state.attachments().get(container)
            if record is None or record.get("status") != ATTACHED:
                return False
            state.attachments().put(container, {**record, "status": PARKED, "parked_at": _now()})
            sync_nft()
            return True

    def _unpark(self, container: str, record: dict[str, Any]) -> Attached:
        record = {**record, "status": ATTACHED}
        record.pop("parked_at", None)
        state.attachments().put(container, record)
        try:
            sync_nft()
        except BaseException:
            state.attachments().put(container, {**record, "status": PARKED})
            raise
        return self._attached(container, record)

    def _attached(self, container: str, record: dict[str, Any]) -> Attached:
        return Attached(
            netns_path=record["netns"],
            hosts=self._hosts_for(container, record),
            addresses={i["network"]: i["address"] or i.get("address6") for i in record["interfaces"]},
        )

    def _hosts_for(self, container: str, record: dict[str, Any]) -> str:
        mine = {i["network"] for i in record["interfaces"]}
        peers = []
        store = state.attachments()
        for other in store.names():
            if other == container:
                continue
            rec = store.get(other) or {}
            if rec.get("status") not in (ATTACHED, PARKED):  # a parked peer comes back, same address
                continue
            for iface in rec.get("interfaces", []):
                if iface["network"] in mine:
                    name = rec.get("hostname") or other
                    peers += [(address, other, name) for address in _addresses(iface)]
        own = [a for i in record["interfaces"] for a in _addresses(i)]
        first = record["interfaces"][0] if record["interfaces"] else {}
        gateways = [first[k] for k in ("gateway", "gateway6") if first.get(k)]
        return hosts.render(record.get("hostname") or container, container, own, peers, gateways)

    def _refresh_peers(self, container: str) -> None:
        """Rewrite /etc/hosts of every other attached container (one came or went)."""
        from berth.containers.paths import ContainerPaths

        store = state.attachments()
        for other in store.names():
            rec = store.get(other)
            if other == container or not rec or rec.get("status") not in (ATTACHED, PARKED):
                continue
            hosts.rewrite_in_place(ContainerPaths.of(other).run / "hosts", self._hosts_for(other, rec))

    def detach(self, container: str) -> bool:
        """Remove everything `attach` made for `container`; False if there was nothing."""
        if state.attachments().get(container) is None and not state.netns_path(container).exists():
            return False  # the common case for containers without networks: no netlink, no lock
        with state.locked(), links.iproute() as ip:
            return self._detach(ip, container)

    def _detach(self, ip: Any, container: str) -> bool:
        record = state.attachments().get(container)
        found = record is not None
        table = state.get_ports()
        mine = [k for k, (_, holder) in table.items() if holder == container]
        if mine:
            for key in mine:
                del table[key]
            state.put_ports(table)
        if record is not None:
            state.attachments().delete(container)  # its ports leave the nft table with it
        if mine or found:
            sync_nft()
        for iface in (record or {}).get("interfaces", []):
            links.delete_link(ip, iface["host_ifname"])
            links.delete_link(ip, iface["peer_ifname"])  # a pair never moved into the netns
            leases = state.get_leases(iface["network"])
            leases = {a: c for a, c in leases.items() if c != container}
            state.put_leases(iface["network"], leases)
        found = ns.remove(state.netns_path(container)) or found
        if found:
            self._refresh_peers(container)
        return found

    def switch(self, spec: str, target: str, container_port: int | None = None) -> dict[str, Any]:
        """Point the published port `spec` ([HOSTIP:]HOSTPORT[/proto]) at container `target`.

        One atomic write of the port table, then one nftables transaction: new connections go
        to `target` from that instant, established ones finish on the container they started on.
        """
        return self.switch_many([(spec, target, container_port)])[0]

    def switch_many(self, moves: Sequence[tuple[str, str, int | None]]) -> list[dict[str, Any]]:
        """Move several published ports, each `(spec, target, container_port)`, all at once.

        Every move is checked before any changes; then the port table is written once and the
        nftables table loaded in ONE transaction, so no client ever sees one port of a
        deployment's revision on the new container and another still on the old one.
        """
        with state.locked():
            before = state.get_ports()
            after = dict(before)
            results: list[dict[str, Any]] = []
            keys: list[str] = []
            for spec, target, container_port in moves:
                key, wanted = _port_key(spec, container_port)
                rec = state.attachments().get(target)
                if not rec or rec.get("status") != ATTACHED or not rec.get("interfaces"):
                    raise Conflict(f"container {target} is not running on a network: start it first")
                current = after.get(key)
                if current is None:
                    if wanted is None:
                        raise NotFound(f"no published port {key}: give --container-port to publish it")
                    holder = find_clash(wanted, after, target)
                    if holder is not None:
                        raise Conflict(f"port {wanted.key} clashes with one published by container {holder}")
                    check_host_free(wanted)
                    port, previous = wanted, None
                else:
                    port, previous = current
                    if wanted is not None:
                        port = PortMapping(port.protocol, port.host_port, wanted.container_port, port.host_ip)
                if port.host_ip and not rec["interfaces"][0].get(
                    "address6" if ipaddress.ip_address(port.host_ip).version == 6 else "address"
                ):
                    raise InvalidInput(f"port {port}: container {target} has no address of that IP version")
                after[key] = (port, target)
                results.append({"port": str(port), "from": previous, "to": target})
                keys.append(key)
            for result, key in zip(results, keys, strict=True):
                result["changed"] = before.get(key) != after[key]
            if after == before:
                return results
            state.put_ports(after)
            try:
                sync_nft()
            except BaseException:
                state.put_ports(before)
                raise
            return results

    def restore(self) -> list[dict[str, Any]]:
        """At boot (and harmless at any time): bridges, forwarding, and the nft table from state.

        Attachments of a previous boot are dropped (their namespaces died with it); containers
        that come back attach again when they start.
        """
        report = []
        with state.locked(), links.iproute() as ip:
            boot = _boot()
            for name in state.attachments().names():
                rec = state.attachments().get(name) or {}
                if rec.get("boot") != boot or not ns.exists(Path(rec.get("netns", "/nonexistent"))):
                    self._detach(ip, name)
                    report.append({"name": name, "action": "detached-stale"})
            for name, net in sorted(state.all_networks().items()):
                if links.ensure_bridge(ip, net.bridge, net.gateway_interfaces):
                    report.append({"name": name, "action": "bridge-created"})
                links.enable_forwarding(net.bridge, ipv6=net.subnet6 is not None)
            before = nft.current()
            sync_nft()
            if nft.current() != before:
                report.append({"name": nft.TABLE, "action": "nft-table-loaded"})
        return report


def _check_family(port: PortMapping, net: Network) -> None:
    """A port bound to a host address needs a container address of that family to forward to."""
    if not port.host_ip:
        return
    version = ipaddress.ip_address(port.host_ip).version
    if (net.subnet if version == 4 else net.subnet6) is None:
        raise InvalidInput(
            f"port {port}: network {net.name} has no IPv{version} subnet, so an IPv{version} host "
            "address has no container address to forward to"
        )


def _addresses(iface: dict[str, Any]) -> list[str]:
    """The interface's addresses without prefix length, IPv4 first."""
    return [iface[k].split("/")[0] for k in ("address", "address6") if iface.get(k)]


def _token(container: str, network: str) -> str:
    import hashlib

    return hashlib.sha256(f"{container}\0{network}".encode()).hexdigest()[:10]


def _open(path: Path) -> int:
    import os

    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def _port_key(spec: str, container_port: int | None) -> tuple[str, PortMapping | None]:
    """The table key of `[HOSTIP:]HOSTPORT[/proto]`, and the full mapping when a container port is known."""
    text, _, proto = spec.partition("/")
    host_ip, _, host_port = text.rpartition(":")
    cport = container_port if container_port is not None else 1
    mapping = parse_port(f"{host_ip + ':' if host_ip else ''}{host_port}:{cport}/{proto or 'tcp'}")
    if ":" in text and host_ip == "":
        raise InvalidInput(f"port {spec!r}: expected [HOSTIP:]HOSTPORT[/tcp|udp]")
    return mapping.key, (mapping if container_port is not None else None)
