"""`berth deploy|rollback|history|status`: deployments with immutable revisions.

deploy: data = the deployment's status after the run (`status`), plus `revision` (the target,
null when nothing had to change), `previous`, `rollout`, `timings` and `recovered` (what a crash
had left and this run finished or undid). A deploy that fails its gate fails with kind
`deploy-failed`; its details say which revision serves, why, the probe output and the last log
lines, and `actions` lists what ran, the automatic rollback included.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from berth.cli.common import add_command, read_json_input
from berth.cli.result import Result
from berth.errors import InvalidInput
from berth.plan import Action

_ROLLOUT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def register(sub: Any) -> None:
    deploy = add_command(sub, "deploy", run_deploy, "deploy a new revision of an app (health-gated)")
    deploy.add_argument("name")
    deploy.add_argument(
        "-f", "--file", required=True, metavar="SPEC", help="deployment spec (JSON; - for stdin)"
    )
    deploy.add_argument("--rollout", metavar="ID", help="the fleet-wide rollout this deploy belongs to")
    deploy.add_argument("--check", action="store_true", help="plan only: change nothing")
    rollback = add_command(sub, "rollback", run_rollback, "go back to a kept revision (no registry needed)")
    rollback.add_argument("name")
    rollback.add_argument("--to", metavar="REV", help="revision number (default: the one before the current)")
    rollback.add_argument("--undo", metavar="ROLLOUT", help="go back to where this host was before a rollout")
    rollback.add_argument("--rollout", metavar="ID", help="the fleet-wide rollout this rollback belongs to")
    rollback.add_argument("--check", action="store_true", help="plan only: change nothing")
    history = add_command(sub, "history", run_history, "a deployment's revisions and operations")
    history.add_argument("name")
    status = add_command(sub, "status", run_status, "a deployment's serving revision, containers and ports")
    status.add_argument("name")
    rm = add_command(sub, "undeploy", run_undeploy, "remove a deployment, all its revisions and containers")
    rm.add_argument("name")
    rm.add_argument("--check", action="store_true", help="plan only: change nothing")


def _rollout(value: str | None) -> str | None:
    if value is not None and not _ROLLOUT.match(value):
        raise InvalidInput(f"rollout id {value!r}: 1-128 letters, digits, '_', '.', ':' or '-'")
    return value


def _deployments() -> Any:
    from berth.deployments.manager import Deployments

    return Deployments()


def _status(d: Any, name: str) -> dict[str, Any]:
    from berth.deployments.view import status

    return status(d, name)


def _text(data: dict[str, Any]) -> str:
    current = data.get("current")
    lines = [f"{data['name']}: revision {current if current is not None else '-'}"]
    for c in data.get("containers", []):
        lines.append(f"  {c['role']:<12} {c['name']:<40} {'running' if c['running'] else 'stopped'}")
    for p in data.get("ports", []):
        lines.append(f"  port {p['port']:<20} -> {p['holder'] or '-'}")
    m = data.get("monitor")
    if m:
        lines.append(
            f"  monitor {m['unit']} {'running' if m['running'] else 'stopped'}, revision {m['revision']}"
        )
        for role, r in sorted(m["roles"].items()):
            last = (r.get("last") or {}).get("output", "-")
            lines.append(
                f"    {role:<12} failures {r['failures']}/{r['threshold']}, restarts {r['restarts']}: {last}"
            )
    return "\n".join(lines)


def run_deploy(args: argparse.Namespace) -> Result:
    from berth.deployments.freeze import freeze
    from berth.deployments.spec import parse_deployment

    spec = parse_deployment(read_json_input(args.file), args.name)
    rollout = _rollout(args.rollout)
    frozen = freeze(spec)
    d = _deployments()
    before = _before(d, spec.name)
    outcome = d.deploy(spec, frozen, rollout, args.check)
    data = _status(d, spec.name)
    actions: list[Action] = [*outcome.recovered, *(outcome.planned if args.check else outcome.applied)]
    data.update(
        revision=outcome.target,
        hash=frozen.hash,
        rollout=rollout,
        check_mode=args.check,
        timings=outcome.timings,
        recovered=[a.to_json() for a in outcome.recovered],
        digests={role: i["digest"] for role, i in frozen.images.items()},
    )
    data["previous"] = before["revision"]
    after = {"revision": outcome.target if args.check and outcome.target else data["current"],
             "hash": frozen.hash}  # fmt: skip
    return Result(data=data, changed=bool(actions), actions=actions, warnings=outcome.warnings,
                  diff={"before": before, "after": after}, text=lambda: _text(data))  # fmt: skip


def _before(d: Any, name: str) -> dict[str, Any]:
    from berth.errors import NotFound

    try:
        s = _status(d, name)
    except NotFound:
        return {"revision": None, "hash": None}
    return {"revision": s["current"], "hash": s["hash_current"]}


def run_rollback(args: argparse.Namespace) -> Result:
    from berth.deployments.plan import parse_revision

    d = _deployments()
    rollout = _rollout(args.rollout)
    if args.undo is not None and args.to is not None:
        raise InvalidInput("give --to or --undo, not both")
    undo = _rollout(args.undo)
    before = _before(d, args.name)
    outcome = d.rollback(args.name, parse_revision(args.to), rollout, undo, args.check)
    data = _status(d, args.name)
    data["previous"] = before["revision"]
    actions: list[Action] = [*outcome.recovered, *(outcome.planned if args.check else outcome.applied)]
    data.update(revision=outcome.target, rollout=rollout, check_mode=args.check, timings=outcome.timings,
                recovered=[a.to_json() for a in outcome.recovered])  # fmt: skip
    after = {"revision": outcome.target if args.check and outcome.target else data["current"],
             "hash": data["hash_current"]}  # fmt: skip
    return Result(data=data, changed=bool(actions), actions=actions, warnings=outcome.warnings,
                  diff={"before": before, "after": after}, text=lambda: _text(data))  # fmt: skip


def run_history(args: argparse.Namespace) -> Result:
    from berth.deployments.view import history

    data = history(_deployments(), args.name)

    def text() -> str:
        lines = [f"{'REV':>5}  {'STATE':<10} {'CREATED':<21} {'ROLLOUT':<20} IMAGES"]
        for r in data["revisions"]:
            images = ",".join(f"{k}={v[:19]}" for k, v in r["digests"].items())
            rollout = r.get("rollout") or "-"
            lines.append(f"{r['number']:>5}  {r['state']:<10} {r['created_at']:<21} {rollout:<20} {images}")
        return "\n".join(lines)

    return Result(data=data, text=text)


def run_status(args: argparse.Namespace) -> Result:
    data = _status(_deployments(), args.name)
    return Result(data=data, text=lambda: _text(data))


def run_undeploy(args: argparse.Namespace) -> Result:
    actions = _deployments().remove(args.name, args.check)
    said = f"{args.name} removed" if actions else f"no deployment {args.name}"
    return Result(
        data={"name": args.name, "check_mode": args.check},
        changed=bool(actions),
        actions=actions,
        text=lambda: said,
    )
