"""`berth volume create|ls|inspect|rm|prune`: named volumes, as podman's."""

from __future__ import annotations

import argparse
from typing import Any

from berth.cli.common import add_command, read_json_input
from berth.cli.result import Result


def register(sub: Any) -> None:
    vol = sub.add_parser("volume", help="named volumes: data kept under the data dir, across containers")
    vsub = vol.add_subparsers(dest="volume_command", required=True, metavar="COMMAND")
    create = add_command(vsub, "create", run_create, "make a named volume (a container's create does too)",
                         "volume create")  # fmt: skip
    create.add_argument("name")
    add_command(vsub, "ls", run_ls, "list named volumes and what uses them", "volume ls")
    inspect = add_command(vsub, "inspect", run_inspect, "a volume's path, age and users", "volume inspect")
    inspect.add_argument("names", nargs="+", metavar="NAME")
    rm = add_command(vsub, "rm", run_rm, "remove volumes no container or kept revision uses", "volume rm")
    rm.add_argument("names", nargs="+", metavar="NAME")
    prune = add_command(vsub, "prune", run_prune, "remove every volume nothing uses", "volume prune")
    prune.add_argument("--check", action="store_true", help="plan only: change nothing")
    apply = add_command(vsub, "apply", run_apply, "make a volume present or absent (modules)", "volume apply")
    apply.add_argument("-f", "--file", required=True, metavar="SPEC", help='JSON {"name", "state"} or -')
    apply.add_argument("--check", action="store_true", help="plan only: change nothing")


def run_create(args: argparse.Namespace) -> Result:
    from berth.containers import volumes

    _, applied, _ = volumes.converge(lambda observed: volumes.plan_create(args.name, observed))
    return Result(
        data={"name": args.name, "path": str(volumes.path_of(args.name))},
        changed=bool(applied),
        actions=applied,
        text=lambda: args.name,
    )


def run_ls(args: argparse.Namespace) -> Result:
    from berth.containers import volumes

    rows = [v.to_json() for v in volumes.observe()]

    def text() -> str:
        lines = [f"{'NAME':<32} {'CREATED':<21} USERS"]
        lines += [
            f"{r['name']:<32} {r['created_at'] or '-':<21} {', '.join(r['users']) or '-'}" for r in rows
        ]
        return "\n".join(lines)

    return Result(data=rows, text=text)


def run_inspect(args: argparse.Namespace) -> Result:
    from berth.containers import volumes
    from berth.containers.spec import validate_volume_name
    from berth.errors import NotFound

    by_name = {v.name: v for v in volumes.observe()}
    rows = []
    for name in args.names:
        validate_volume_name(name)
        if name not in by_name:
            raise NotFound(f"no volume named {name!r}", volume=name)
        rows.append(by_name[name].to_json())
    return Result(data=rows, text=lambda: "\n".join(f"{r['name']}: {r['path']}" for r in rows))


def run_rm(args: argparse.Namespace) -> Result:
    from berth.containers import volumes

    _, applied, _ = volumes.converge(lambda observed: volumes.plan_remove(args.names, observed))
    return Result(
        data={"removed": [a.target for a in applied]},
        changed=bool(applied),
        actions=applied,
        text=lambda: "\n".join(a.target for a in applied),
    )


def run_prune(args: argparse.Namespace) -> Result:
    from berth.containers import volumes

    planned, applied, observed = volumes.converge(volumes.plan_prune, check=args.check)
    actions = planned if args.check else applied
    kept = [v.name for v in observed if v.users]
    return Result(
        data={
            "removed": [a.target for a in actions if a.kind == "remove-volume"],
            "kept": kept,
            "check_mode": args.check,
        },
        changed=bool(actions),  # in check mode: what would change
        actions=actions,
        text=lambda: "\n".join(a.target for a in actions if a.kind == "remove-volume") or "nothing to remove",
    )


def run_apply(args: argparse.Namespace) -> Result:
    from berth.containers import volumes
    from berth.errors import InvalidInput

    doc = read_json_input(args.file)
    if not isinstance(doc, dict) or set(doc) - {"name", "state"} or "name" not in doc:
        raise InvalidInput('volume apply: expected a JSON object {"name": NAME, "state": "present"|"absent"}')
    name, state = doc["name"], doc.get("state", "present")
    planned, applied, observed = volumes.converge(
        lambda seen: volumes.plan_state(name, state, seen), check=args.check
    )
    before = next((v.to_json() for v in observed if v.name == name), None)
    after = None
    if state == "present" and applied:  # made just now: as it is on disk
        after = next(v.to_json() for v in volumes.observe() if v.name == name)
    elif state == "present":
        after = before or {"name": name, "path": str(volumes.path_of(name)), "created_at": None,
                           "users": [], "in_use": False}  # fmt: skip
    actions = planned if args.check else applied
    return Result(
        data={"name": name, "state": state, "volume": after, "check_mode": args.check},
        changed=bool(actions),  # in check mode: what would change
        actions=actions,
        diff={"before": {"state": "present" if before else "absent"}, "after": {"state": state}},
        text=lambda: f"volume {name}: {', '.join(a.kind for a in actions) or 'unchanged'}",
    )
