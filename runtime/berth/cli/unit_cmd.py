"""`berth unit`: transient systemd services from a JSON spec (apply, inspect, ls, stop, rm).

The JSON contract (`data` of the envelope; `state` objects are null when systemd does not
have the unit loaded, which is where a stopped transient unit ends up):

- apply / stop / rm: `unit`, `spec_hash` (null for state absent), `desired_state`, and
  `state` = {load_state, active_state, sub_state, result, main_pid (0: none),
  exec_main_status, exec_main_code ("exited"|"killed"|"dumped"|null), control_group,
  invocation_id}, observed after the command. With `--check`: `check_mode: true`, the
  envelope's `actions` are the *planned* actions, `changed` means "would change", and `state`
  is the unit as it is now. `diff` = {"before": {"state", "spec"}, "after": {"state", "spec"}}
  where state is "started", "stopped", "failed" or null (absent) and spec the canonical spec.
- inspect: `unit`, `managed`, `desired_state`, `spec_hash`, `running_spec_hash` (the hash the
  live unit carries in BERTH_SPEC_HASH), `spec`, `state`, `properties` (live limits).
- ls: `units` = [{unit, desired_state, spec_hash, spec, state}], `systemd_version`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from berth.cli.common import add_command, read_json_input
from berth.cli.result import Result
from berth.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from berth.plan import Action
    from berth.units.apply import Outcome

# Live properties `inspect` reports besides the state: the limits systemd applied.
INSPECT_PROPERTIES = [
    "Slice",
    "MemoryMax",
    "MemoryHigh",
    "MemorySwapMax",
    "CPUQuotaPerSecUSec",
    "CPUWeight",
    "TasksMax",
    "IOWeight",
    "CPUAffinity",
    "MemoryCurrent",
    "TasksCurrent",
    "NRestarts",
    "ExecMainStartTimestamp",
    "ExecMainExitTimestamp",
]


def register(sub: Any) -> None:
    parser = add_command(sub, "unit", _need_subcommand, "manage transient systemd services")
    units = parser.add_subparsers(dest="unit_command", metavar="SUBCOMMAND", required=True)

    p = add_command(units, "apply", run_apply, "make a unit match a JSON spec", "unit apply")
    p.add_argument(
        "-f", "--file", required=True, metavar="FILE", help="the spec: a JSON file, or - for stdin"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="plan only: report what would change; touch no unit, write no record",
    )
    _timeout_option(p)
    p = add_command(units, "inspect", run_inspect, "show a unit's spec and live state", "unit inspect")
    p.add_argument("name")
    add_command(units, "ls", run_ls, "list the units berth manages", "unit ls")
    p = add_command(units, "stop", run_stop, "stop a unit, keeping berth's record", "unit stop")
    p.add_argument("name")
    _timeout_option(p)
    p = add_command(units, "rm", run_rm, "stop a unit and forget it", "unit rm")
    p.add_argument("name")
    _timeout_option(p)


def _timeout_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for each systemd job (default 120)",
    )


def _need_subcommand(args: argparse.Namespace) -> Result:  # argparse requires one first
    raise InvalidInput("berth unit needs a subcommand: apply, inspect, ls, stop or rm")


def run_apply(args: argparse.Namespace) -> Result:
    from berth.systemd.sync import Systemd
    from berth.units.apply import converge
    from berth.units.records import UnitRecords
    from berth.units.spec import parse_spec

    spec = parse_spec(read_json_input(args.file))
    with Systemd() as sd:
        outcome = converge(spec, sd, UnitRecords(), check=args.check, timeout=args.timeout)
    return _converge_result(outcome)


def _change_state(args: argparse.Namespace, state: str) -> Result:
    """`stop` and `rm`: converge a managed unit to `state` (its recorded spec otherwise kept)."""
    from berth.systemd.names import service_name
    from berth.systemd.sync import Systemd
    from berth.units.apply import converge
    from berth.units.observe import live_state
    from berth.units.records import UnitRecords
    from berth.units.spec import MARKER_ENV, UnitSpec, parse_spec

    name = service_name(args.name)
    records = UnitRecords()
    record = records.get(name)
    with Systemd() as sd:
        if record is not None:
            spec = parse_spec(record.spec).with_state(state)
        else:
            live = live_state(sd, name)
            if not live.exists:
                raise NotFound(
                    f"no unit {name}: berth has no record of it and systemd has not loaded it", unit=name
                )
            if live.env(MARKER_ENV) is None:
                raise NotFound(
                    f"{name} is not managed by berth: no record, and the unit does not carry {MARKER_ENV}",
                    unit=name,
                )
            spec = UnitSpec(name=name, state=state)
        outcome = converge(spec, sd, records, timeout=args.timeout)
    return _converge_result(outcome)


def run_stop(args: argparse.Namespace) -> Result:
    return _change_state(args, "stopped")


def run_rm(args: argparse.Namespace) -> Result:
    return _change_state(args, "absent")


def _live_json(live: Any) -> dict[str, Any] | None:
    """The `state` object of the contract; null when systemd does not have the unit."""
    return live.to_json() if live.exists else None


def _converge_result(outcome: Outcome) -> Result:
    from berth.units.limits import cgroup_unified, unenforced

    spec, before, after = outcome.spec, outcome.before, outcome.after
    actions = outcome.planned if outcome.check else outcome.applied
    data: dict[str, Any] = {
        "unit": spec.name,
        "spec_hash": None if spec.state == "absent" else spec.spec_hash,
        "desired_state": spec.state,
        "state": _live_json(after.live),
    }
    if outcome.check:
        data["check_mode"] = True
        after_side = {
            "state": None if spec.state == "absent" else spec.state,
            "spec": None if spec.state == "absent" else spec.to_json(),
        }
    else:
        after_side = after.diff_side()
    warnings: list[str] = []
    if spec.state == "started":
        warnings += unenforced([p.name for p in spec.systemd_properties()], cgroup_unified())
        if not outcome.check and after.active_state == "failed":
            warnings.append(
                f"{spec.name} failed after it started: result "
                f"{after.live.result!r}, exit status {after.live.exec_main_status}"
            )
    return Result(
        data=data,
        changed=bool(actions),
        actions=list(actions),
        warnings=warnings,
        diff={"before": before.diff_side(), "after": after_side},
        text=lambda: _converge_text(data, actions, outcome.check),
    )


def _state_text(state: dict[str, Any] | None) -> str:
    if state is None:
        return "not loaded in systemd"
    text = f"{state['active_state']}/{state['sub_state']}"
    if state.get("main_pid"):
        text += f", pid {state['main_pid']}"
    if state.get("result") not in (None, "success"):
        text += f", result {state['result']}"
    if state.get("exec_main_code"):
        text += f", main process {state['exec_main_code']} with status {state['exec_main_status']}"
    return text


def _converge_text(data: dict[str, Any], actions: list[Action], check: bool) -> str:
    steps = "; ".join(
        a.kind + (f" ({a.detail['reason']})" if a.detail.get("reason") else "") for a in actions
    )
    head = ("would " if check else "") + steps if actions else "unchanged"
    spec = f"{data['spec_hash'][:12]}, " if data["spec_hash"] else ""
    return (
        f"{data['unit']}: {head}\n  state: {_state_text(data['state'])}\n"
        f"  spec:  {spec}desired {data['desired_state']}"
    )


def run_inspect(args: argparse.Namespace) -> Result:
    from berth.systemd.names import service_name
    from berth.systemd.sync import Systemd
    from berth.units.observe import Observed, live_state
    from berth.units.records import UnitRecords
    from berth.units.spec import MARKER_ENV

    name = service_name(args.name)
    record = UnitRecords().get(name)
    with Systemd() as sd:
        live = live_state(sd, name)
    if record is None and not live.exists:
        raise NotFound(f"no unit {name}: berth has no record of it and systemd has not loaded it", unit=name)
    observed = Observed(record, live)
    data = {
        "unit": name,
        "managed": observed.managed,
        "desired_state": record.state if record else None,
        "spec_hash": record.spec_hash if record else None,
        "running_spec_hash": live.env(MARKER_ENV),
        "spec": record.spec if record else None,
        "state": _live_json(live),
        "properties": live.property_json(INSPECT_PROPERTIES),
    }
    return Result(data=data, text=lambda: _inspect_text(data))


def _inspect_text(data: dict[str, Any]) -> str:
    lines = [
        f"{data['unit']}" + ("" if data["managed"] else " (not managed by berth)"),
        f"  state:    {_state_text(data['state'])}",
    ]
    if data["state"] and data["state"].get("control_group"):
        lines.append(f"  cgroup:   {data['state']['control_group']}")
    if data["spec_hash"]:
        lines.append(f"  desired:  {data['desired_state']} (spec {data['spec_hash'][:12]})")
    if data["running_spec_hash"] and data["running_spec_hash"] != data["spec_hash"]:
        lines.append(f"  running:  spec {data['running_spec_hash'][:12]} (differs from record)")
    if data["spec"] and data["spec"].get("command"):
        lines.append(f"  command:  {' '.join(data['spec']['command'])}")
    for key, value in sorted(data["properties"].items()):
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def run_ls(args: argparse.Namespace) -> Result:
    from berth.systemd.sync import Systemd
    from berth.units.records import UnitRecords

    records = UnitRecords()
    recorded = {name: records.get(name) for name in records.names()}
    units = []
    with Systemd() as sd:
        version = sd.version()  # also proves systemd answers when there is nothing to list
        loaded = {e.name: e.path for e in sd.list_units(list(recorded))} if recorded else {}
        for name, record in recorded.items():
            live = sd.unit_state(name, loaded[name]) if name in loaded else None
            units.append(
                {
                    "unit": name,
                    "desired_state": record.state if record else None,
                    "spec_hash": record.spec_hash if record else None,
                    "spec": record.spec if record else None,
                    "state": _live_json(live) if live else None,
                }
            )
    data = {"units": units, "systemd_version": version}
    return Result(data=data, text=lambda: _ls_text(units))


def _ls_text(units: list[dict[str, Any]]) -> str:
    rows = [("UNIT", "DESIRED", "ACTIVE", "SUB", "SPEC")]
    for u in units:
        state = u["state"] or {"active_state": "-", "sub_state": "-"}
        rows.append(
            (
                u["unit"],
                str(u["desired_state"]),
                state["active_state"],
                state["sub_state"],
                (u["spec_hash"] or "")[:12],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
