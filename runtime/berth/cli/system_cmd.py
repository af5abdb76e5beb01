"""`berth system install|info` and `berth restore`: the host-level commands."""

from __future__ import annotations

import argparse
from typing import Any

from berth.cli.common import add_command
from berth.cli.result import Result
from berth.plan import Action


def register(sub: Any) -> None:
    system = sub.add_parser("system", help="host set-up and facts")
    ssub = system.add_subparsers(dest="system_command", required=True, metavar="COMMAND")
    add_command(ssub, "install", run_install, "install and enable berth-restore.service", "system install")
    add_command(ssub, "info", run_info, "the host's cgroup mode and what it can enforce", "system info")
    add_command(sub, "restore", run_restore, "after a boot: restart the containers whose policy says so")


def run_install(args: argparse.Namespace) -> Result:
    from berth.containers.boot_unit import UNIT, install
    from berth.systemd.sync import Systemd

    with Systemd() as systemd:
        changed = install(systemd)
    return Result(
        data={"unit": UNIT},
        changed=changed,
        actions=[Action("install-unit", UNIT)] if changed else [],
        text=lambda: f"{UNIT} {'installed' if changed else 'already installed'}",
    )


def run_info(args: argparse.Namespace) -> Result:
    from berth.host_info import host_info

    data = host_info()
    return Result(data=data, text=lambda: "\n".join(f"{k}: {v}" for k, v in data.items()))


def run_restore(args: argparse.Namespace) -> Result:
    from berth.containers.manager import Containers
    from berth.containers.restore import restore
    from berth.deployments.manager import Deployments, restore_all
    from berth.network.containers import restore_networks
    from berth.slices.manager import Slices

    slices = [{"name": unit, "action": "started", "restart": "always"} for unit in Slices().restore()]
    containers = Containers()
    # Step containers of builds the reboot (or a kill) ended: removed, not marked exited.
    reaped = containers.reap_orphans()
    removed = [{"name": a.target, "action": "removed", "reason": a.detail["reason"]} for a in reaped.applied]
    # Networks before containers: bridges, addresses and nftables tables come back even for
    # networks no container uses.
    report = slices + removed + restore_networks() + restore(containers)
    # After the containers: each deployment ends on one revision, serving (finishing or undoing
    # a deploy a crash or the reboot interrupted).
    deployed = restore_all(Deployments(containers))
    report += deployed
    started = [r for r in report if r["action"] == "started"]
    return Result(
        data=report,
        changed=bool(report),
        actions=[Action(r["action"], r["name"]) for r in report],
        warnings=reaped.warnings,
        text=lambda: "\n".join(f"{r['name']}: {r['action']}" for r in report) or "nothing to restore",
        exit_code=0
        if len(started) == len([r for r in report if r.get("restart") == "always"])
        and not [r for r in deployed if r["action"] == "failed"]
        else 1,
    )
