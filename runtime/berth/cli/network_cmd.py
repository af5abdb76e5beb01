"""`berth network apply|create|ls|inspect|rm|switch|ports|restore`."""

from __future__ import annotations

import argparse
from typing import Any

from berth.cli.common import add_command, read_json_input
from berth.cli.result import Result


def register(sub: Any) -> None:
    network = sub.add_parser("network", help="container networks: bridges, addresses, published ports")
    nsub = network.add_subparsers(dest="network_command", required=True, metavar="COMMAND")
    apply = add_command(
        nsub,
        "apply",
        run_apply,
        "create, change or remove a network to match a declarative spec",
        "network apply",
    )
    apply.add_argument(
        "-f",
        "--file",
        required=True,
        metavar="SPEC",
        help="JSON {name, state, subnet, gateway, subnet6, gateway6, bridge, masquerade} or -",
    )
    apply.add_argument("--check", action="store_true", help="plan only: change nothing")
    create = add_command(
        nsub, "create", run_create, "create a network (a bridge, a subnet)", "network create"
    )
    create.add_argument("name")
    create.add_argument(
        "--subnet",
        metavar="CIDR",
        action="append",
        help="IPv4 or IPv6 subnet; twice (one of each) for dual stack (default: a free /24 of 10.89.0.0/16)",
    )
    create.add_argument(
        "--gateway",
        metavar="IP",
        action="append",
        help="the bridge's address on a subnet, one per IP version (default: the subnet's first host)",
    )
    create.add_argument("--bridge", metavar="IFNAME", help="bridge interface name (default: berthN)")
    create.add_argument(
        "--no-masquerade", dest="masquerade", action="store_false", help="no outbound NAT for this network"
    )
    create.add_argument("--check", action="store_true", help="plan only: change nothing")
    add_command(nsub, "ls", run_ls, "list networks", "network ls")
    inspect = add_command(
        nsub, "inspect", run_inspect, "networks with their containers, leases, ports", "network inspect"
    )
    inspect.add_argument("names", nargs="+", metavar="NAME")
    rm = add_command(nsub, "rm", run_rm, "remove networks no container uses", "network rm")
    rm.add_argument("names", nargs="+", metavar="NAME")
    rm.add_argument("--check", action="store_true", help="plan only: change nothing")
    switch = add_command(
        nsub,
        "switch",
        run_switch,
        "point a published port at another running container, atomically (established "
        "connections finish where they are)",
        "network switch",
    )
    switch.add_argument("port", metavar="[HOSTIP:]HOSTPORT[/tcp|udp]")
    switch.add_argument("container")
    switch.add_argument(
        "--container-port", type=int, metavar="N", help="the port inside the container (default: unchanged)"
    )
    add_command(nsub, "ports", run_ports, "published ports and the containers holding them", "network ports")
    add_command(
        nsub,
        "restore",
        run_restore,
        "at boot: bridges and the nftables table from state (idempotent)",
        "network restore",
    )


def _networks() -> Any:
    from berth.network.manager import Networks

    return Networks()


def run_create(args: argparse.Namespace) -> Result:
    from berth.errors import InvalidInput

    subnets, gateways = args.subnet or [], args.gateway or []
    if len(subnets) > 2 or len(gateways) > 2:
        raise InvalidInput("--subnet and --gateway: at most one IPv4 and one IPv6 each")
    subnet, subnet6 = [*subnets, None, None][:2]
    gateway, gateway6 = [*gateways, None, None][:2]
    net, actions = _networks().create(
        args.name,
        subnet,
        gateway,
        args.bridge,
        args.masquerade,
        check=args.check,
        subnet6=subnet6,
        gateway6=gateway6,
    )
    return Result(
        data={**net.to_json(), "check_mode": args.check},
        changed=bool(actions),
        actions=actions,
        text=lambda: f"{net.name} {' '.join(str(s) for s in net.subnets)} ({net.bridge})",
    )


def _side(net: Any) -> dict[str, Any]:
    return {"state": "absent"} if net is None else {"state": "present", **net.to_json()}


def run_apply(args: argparse.Namespace) -> Result:
    from berth.network.request import parse_request

    request = parse_request(read_json_input(args.file))
    outcome = _networks().converge(request, check=args.check)
    actions = outcome.planned if args.check else outcome.applied
    network = {"name": request.name} if outcome.after is None else outcome.after.to_json()
    return Result(
        data={**network, "state": request.state, "containers": outcome.containers, "check_mode": args.check},
        changed=bool(actions),
        actions=actions,
        diff={"before": _side(outcome.before), "after": _side(outcome.after)},
        text=lambda: f"{request.name}: {', '.join(a.kind for a in actions) or 'unchanged'}",
    )


def run_ls(args: argparse.Namespace) -> Result:
    rows = _networks().ls()

    def text() -> str:
        lines = [f"{'NAME':<20} {'BRIDGE':<16} {'SUBNET':<18} {'GATEWAY':<16} CONTAINERS"]
        for r in rows:
            subnet = ",".join(filter(None, (r["subnet"], r.get("subnet6"))))
            gateway = ",".join(filter(None, (r["gateway"], r.get("gateway6"))))
            lines.append(
                f"{r['name']:<20} {r['bridge']:<16} {subnet:<18} {gateway:<16} {','.join(r['containers'])}"
            )
        return "\n".join(lines)

    return Result(data=rows, text=text)


def run_inspect(args: argparse.Namespace) -> Result:
    n = _networks()
    return Result(data=[n.inspect(name) for name in args.names])


def run_rm(args: argparse.Namespace) -> Result:
    n = _networks()
    actions = []
    for name in args.names:
        actions += n.remove(name, check=args.check)
    return Result(
        data={"names": args.names, "check_mode": args.check},
        changed=bool(actions),
        actions=actions,
        text=lambda: "\n".join(args.names),
    )


def run_switch(args: argparse.Namespace) -> Result:
    from berth.plan import Action

    data = _networks().switch(args.port, args.container, args.container_port)
    changed = data.pop("changed")
    moved = Action("switch-port", data["port"], {"from": data["from"], "to": data["to"]})
    return Result(
        data=data,
        changed=changed,
        actions=[moved] if changed else [],
        text=lambda: f"{data['port']}: {data['from'] or '-'} -> {data['to']}",
    )


def run_ports(args: argparse.Namespace) -> Result:
    from berth.network import state

    def parked(holder: str) -> bool:  # its process died and systemd restarts it: no rule meanwhile
        return (state.attachments().get(holder) or {}).get("status") == "parked"

    rows = [
        {"key": key, "port": str(port), **port.to_json(), "container": holder, "parked": parked(holder)}
        for key, (port, holder) in sorted(state.get_ports().items())
    ]
    return Result(
        data=rows,
        text=lambda: "\n".join(
            f"{r['port']:<32} {r['container']}{' (parked: restarting)' if r['parked'] else ''}" for r in rows
        ),
    )


def run_restore(args: argparse.Namespace) -> Result:
    from berth.plan import Action

    report = _networks().restore()
    return Result(
        data=report,
        changed=bool(report),
        actions=[Action(r["action"], r["name"]) for r in report],
        text=lambda: "\n".join(f"{r['name']}: {r['action']}" for r in report) or "nothing to restore",
    )
