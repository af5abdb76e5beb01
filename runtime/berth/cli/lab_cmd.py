"""`berth lab up|down|status|inventory|reboot`: a fleet of real systemd hosts on this machine."""

from __future__ import annotations

import argparse
from typing import Any

from berth.cli.common import add_command
from berth.cli.result import Result
from berth.plan import Action


def register(sub: Any) -> None:
    lab = sub.add_parser("lab", help="a local fleet of real systemd hosts (tests, demos, molecule)")
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", required=True)

    up = add_command(lab_sub, "up", run_up, "boot a lab of N hosts", "lab up")
    up.add_argument("--hosts", type=int, default=3, help="number of hosts (default 3)")
    up.add_argument("--subnet", help="IPv4 subnet for the lab (default: a free /24 of 10.251.0.0/16)")
    up.add_argument(
        "--vm",
        action="store_true",
        help="hosts are qemu VMs (software emulation) with cgroup v2, from an image the lab builds",
    )
    up.add_argument(
        "--boot-timeout", type=float, metavar="SECONDS", help="per host (default 120, with --vm 600)"
    )

    add_command(lab_sub, "down", run_down, "power off every host and remove everything", "lab down")
    add_command(lab_sub, "status", run_status, "each host's name, address and systemd PID", "lab status")
    add_command(
        lab_sub, "inventory", run_inventory, "print the path of the lab's Ansible inventory", "lab inventory"
    )
    reboot = add_command(lab_sub, "reboot", run_reboot, "power a host off and boot it again", "lab reboot")
    reboot.add_argument("host")
    reboot.add_argument("--boot-timeout", type=float, metavar="SECONDS")
    image = add_command(
        lab_sub, "image", run_image, "build the VM lab's base image if needed; say where it is", "lab image"
    )
    image.add_argument("--rebuild", action="store_true", help="build it even if it is cached")

    for parser in lab_sub.choices.values():
        parser.add_argument("--name", default="berth", help="lab name (default: berth)")


def _lab(args: argparse.Namespace) -> Any:
    from berth.lab.fleet import Lab

    return Lab(args.name)


def _status_data(lab: Any, state: Any) -> dict[str, Any]:
    import ipaddress

    from berth.lab.config import gateway_address

    return {
        "name": state.name,
        "subnet": state.subnet,
        # The machine's address on the lab's bridge: what hosts reach the machine at (a registry, say).
        "gateway": str(gateway_address(ipaddress.IPv4Network(state.subnet)).ip),
        "kind": state.kind,
        "inventory": str(lab.paths.inventory),
        "hosts": [
            {
                "name": h.name,
                "address": h.address.split("/")[0],
                "pid": h.pid,
                "running": h.running(),
                "system_state": h.system_state,
                "boot_seconds": h.boot_seconds,
            }
            for h in state.hosts
        ],
    }


def _status_text(data: dict[str, Any]) -> str:
    rows = [
        f"lab {data['name']}  subnet {data['subnet']}  gateway {data['gateway']}",
        f"  inventory {data['inventory']}",
    ]
    for h in data["hosts"]:
        state = h["system_state"] if h["running"] else "down"
        rows.append(f"  {h['name']:<14} {h['address']:<15} pid {h['pid'] or '-':<8} {state}")
    return "\n".join(rows)


def run_up(args: argparse.Namespace) -> Result:
    lab = _lab(args)
    state = lab.up(args.hosts, subnet=args.subnet, boot_timeout=args.boot_timeout, vm_hosts=args.vm)
    data = _status_data(lab, state)
    return Result(
        data=data,
        changed=True,
        actions=[Action("boot-host", h.name) for h in state.hosts],
        text=lambda: _status_text(data),
    )


def run_down(args: argparse.Namespace) -> Result:
    data = _lab(args).down()
    return Result(
        data=data,
        changed=data["removed"],
        actions=[Action("remove-lab", args.name)] if data["removed"] else [],
        warnings=[f"left behind: {item}" for item in data["leftovers"]],
        text=lambda: f"lab {args.name} is down" if data["removed"] else f"lab {args.name} was not up",
        exit_code=1 if data["leftovers"] else 0,
    )


def run_status(args: argparse.Namespace) -> Result:
    lab = _lab(args)
    data = _status_data(lab, lab.status())
    return Result(data=data, text=lambda: _status_text(data))


def run_inventory(args: argparse.Namespace) -> Result:
    lab = _lab(args)
    lab.status()  # a lab that is not up has no inventory
    path = str(lab.paths.inventory)
    return Result(data={"inventory": path}, text=lambda: path)


def run_reboot(args: argparse.Namespace) -> Result:
    lab = _lab(args)
    host = lab.reboot(args.host, boot_timeout=args.boot_timeout)
    return Result(
        data={
            "name": host.name,
            "pid": host.pid,
            "boot_seconds": host.boot_seconds,
        },
        changed=True,
        actions=[Action("reboot-host", host.name)],
        text=lambda: f"{host.name} rebooted in {host.boot_seconds} s",
    )


def run_image(args: argparse.Namespace) -> Result:
    import time

    from berth.lab import vm_image
    from berth.lab.config import state_root

    started = time.monotonic()
    image, built = vm_image.ensure(state_root(), rebuild=args.rebuild)
    data = {**image.info(), "built": built, "seconds": round(time.monotonic() - started, 1)}
    return Result(
        data=data,
        changed=built,
        actions=[Action("build-image", image.recipe_hash)] if built else [],
        text=lambda: f"{image.dir} ({'built in ' + str(data['seconds']) + ' s' if built else 'cached'})",
    )
