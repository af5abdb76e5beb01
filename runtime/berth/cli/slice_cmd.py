"""`berth slice apply|ls|rm`: slices and their resources (binding, priority, limits)."""

from __future__ import annotations

import argparse
from typing import Any

from berth.cli.common import add_command, read_json_input
from berth.cli.result import Result


def register(sub: Any) -> None:
    sl = sub.add_parser(
        "slice", help="cgroup slices: static binding, priority and limits for groups of containers"
    )
    ssub = sl.add_subparsers(dest="slice_command", required=True, metavar="COMMAND")
    apply = add_command(ssub, "apply", run_apply, "create or change a slice (live)", "slice apply")
    apply.add_argument(
        "-f", "--file", required=True, metavar="SPEC", help='JSON {"name", "resources", "state"} or -'
    )
    apply.add_argument("--check", action="store_true", help="plan only: change nothing")
    add_command(ssub, "ls", run_ls, "list berth's slices", "slice ls")
    rm = add_command(ssub, "rm", run_rm, "remove a slice (it must be empty)", "slice rm")
    rm.add_argument("name")


def run_apply(args: argparse.Namespace) -> Result:
    from berth.slices.manager import Slices
    from berth.slices.spec import parse_slice

    spec, state = parse_slice(read_json_input(args.file))
    outcome = Slices().converge(spec, state, check=args.check)
    actions = outcome.planned if args.check else outcome.applied
    before = outcome.before
    diff = {
        "before": {"state": "present" if before else "absent", "resources": (before or {}).get("resources")},
        "after": {"state": state, "resources": dict(spec.resources) if state == "present" else None},
    }
    return Result(
        data={**spec.to_json(), "spec_hash": spec.spec_hash, "state": state, "check_mode": args.check},
        changed=bool(actions),
        actions=actions,
        warnings=outcome.warnings,
        diff=diff,
        text=lambda: f"{spec.unit}: {', '.join(a.kind for a in actions) or 'unchanged'}",
    )


def run_ls(args: argparse.Namespace) -> Result:
    from berth.slices.manager import Slices

    rows = Slices().rows()
    return Result(
        data=rows,
        text=lambda: "\n".join(f"{r['unit']:<32} {r['active_state']:<10} {r['resources']}" for r in rows),
    )


def run_rm(args: argparse.Namespace) -> Result:
    from berth.slices.manager import Slices
    from berth.slices.spec import SliceSpec, validate_group

    outcome = Slices().converge(SliceSpec(validate_group(args.name)), "absent")
    return Result(
        data={"name": args.name},
        changed=bool(outcome.applied),
        actions=outcome.applied,
        text=lambda: args.name,
    )
