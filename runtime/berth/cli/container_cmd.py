"""Container commands: run, create, start, stop, restart, rm, ps, inspect, logs, container apply."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from berth.cli.common import add_command, read_json_input
from berth.cli.container_args import add_device_limit_flags, add_spec_flags, device_limits, spec_from_args
from berth.cli.result import Result
from berth.errors import InvalidInput


def register(sub: Any) -> None:
    run = add_command(sub, "run", run_run, "create and start a container")
    run.add_argument("-d", "--detach", action="store_true", help="return once the container's process runs")
    run.add_argument("--rm", action="store_true", help="remove the container when it exits")
    run.add_argument("-i", "--interactive", action="store_true", help="keep stdin attached (foreground only)")
    add_spec_flags(run)
    create = add_command(sub, "create", run_create, "create a container without starting it")
    add_spec_flags(create)
    stop = add_command(
        sub, "stop", run_stop, "stop containers (stop signal, then SIGKILL after the stop timeout)"
    )
    _time_option(stop, "default: the container's --stop-timeout")
    stop.add_argument("names", nargs="+", metavar="NAME")
    for name, fn, text in (
        ("start", run_start, "start containers"),
        ("restart", run_restart, "stop and start containers"),
        ("inspect", run_inspect, "everything berth and systemd know about containers"),
    ):
        p = add_command(sub, name, fn, text)
        p.add_argument("names", nargs="+", metavar="NAME")
    ex = add_command(sub, "exec", run_exec, "run a command inside a running container")
    ex.add_argument("-i", "--interactive", action="store_true", help="keep stdin attached")
    ex.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal in the container")
    ex.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    ex.add_argument("-u", "--user", metavar="USER[:GROUP]")
    ex.add_argument("-w", "--workdir")
    ex.add_argument("name")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    stats = add_command(
        sub, "stats", run_stats, "CPU, memory, tasks and IO of containers (cgroup accounting)"
    )
    stats.add_argument("names", nargs="*", metavar="NAME", help="default: every running container")
    upd = add_command(sub, "update", run_update, "change a running container's resources live")
    upd.add_argument("name")
    for flag, key, meta in (
        ("--memory", "memory_max", "SIZE"), ("--memory-high", "memory_high", "SIZE"),
        ("--memory-swap-max", "memory_swap_max", "SIZE"), ("--cpu-quota", "cpu_quota", "PERCENT"),
        ("--cpu-weight", "cpu_weight", "N"), ("--io-weight", "io_weight", "N"),
        ("--pids-limit", "tasks_max", "N"), ("--cpuset-cpus", "cpus", "LIST"),
    ):  # fmt: skip
        upd.add_argument(flag, dest=key, metavar=meta)
    add_device_limit_flags(upd)
    kill = add_command(sub, "kill", run_kill, "send a signal to containers' main process")
    kill.add_argument("-s", "--signal", default="KILL", help="signal name or number (default KILL)")
    kill.add_argument("names", nargs="+", metavar="NAME")
    rm = add_command(sub, "rm", run_rm, "remove containers: unit, upper dir, state")
    rm.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="stop running containers first (SIGKILL at once, unless -t)",
    )
    _time_option(rm, "with -f; default 0: killed at once, as `podman rm -f -t 0`")
    rm.add_argument("names", nargs="+", metavar="NAME")
    ps = add_command(sub, "ps", run_ps, "list running containers")
    ps.add_argument("-a", "--all", action="store_true", help="list every container, not only running ones")
    logs = add_command(sub, "logs", run_logs, "a container's output, from the journal")
    logs.add_argument("name")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--since", help="journalctl --since syntax, e.g. '10 min ago'")
    logs.add_argument("-n", "--tail", type=int, metavar="N")

    container = sub.add_parser("container", help="declarative container management (used by the modules)")
    csub = container.add_subparsers(dest="container_command", required=True, metavar="COMMAND")
    apply = add_command(
        csub, "apply", run_apply, "make a container match a spec and state", "container apply"
    )
    apply.add_argument(
        "-f", "--file", required=True, metavar="SPEC", help="JSON: {spec: {...}, state: ...} or -"
    )
    apply.add_argument("--check", action="store_true", help="plan only: change nothing")


def _time_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "-t",
        "--time",
        type=_seconds,
        metavar="SECONDS",
        help="seconds to wait after the stop signal before SIGKILL, at most the container's "
        f"stop timeout ({default})",
    )


def _seconds(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds")
    return int(text)


def _containers() -> Any:
    from berth.containers.manager import Containers

    return Containers()


def _parse(doc: dict[str, Any]) -> Any:
    from berth.containers.spec import parse_spec

    return parse_spec(doc)


def _describe(c: Any, name: str, observed: Any = None) -> dict[str, Any]:
    from berth.network.containers import interfaces_of

    observed = observed or c.observe(name)
    record = observed.record or {}
    live = observed.live
    return {
        "name": name,
        "status": observed.status,
        "unit": record.get("unit"),
        "spec_hash": record.get("spec_hash"),
        "spec": record.get("spec"),
        "layers": record.get("layers"),
        "image": record.get("image"),
        "argv": record.get("argv"),
        "userns": record.get("userns"),  # the host ids of the container's 0.. (None: the host's)
        "created_at": record.get("created_at"),
        "started_at": record.get("started_at"),
        "finished_at": record.get("finished_at"),
        "pid": live.main_pid or None,
        "control_group": live.control_group,
        "networks": interfaces_of(name),  # addresses and MACs while attached
        "exit": observed.exit(),
    }


def run_run(args: argparse.Namespace) -> Result:
    spec = _parse(spec_from_args(args))
    c = _containers()
    # In the foreground the container writes straight to our stdio (no journal round trip).
    stdio = None if args.detach else (_stdin_fd(args.interactive), sys.stdout.fileno(), sys.stderr.fileno())
    sys.stdout.flush()
    outcome = c.create(spec, start=True, stdio=stdio)
    if args.detach:
        info = _describe(c, spec.name)
        return Result(
            data=info,
            changed=True,
            actions=outcome.applied,
            warnings=outcome.warnings,
            text=lambda: spec.name,
        )
    code, info = _wait(c, spec.name)
    if args.rm:
        c.remove(spec.name, force=True)
    return Result(
        data=info,
        changed=True,
        actions=outcome.applied,
        warnings=outcome.warnings,
        text=lambda: "",
        exit_code=code,
    )


def _stdin_fd(interactive: bool) -> int:
    import os

    return sys.stdin.fileno() if interactive else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


def _wait(c: Any, name: str) -> tuple[int, dict[str, Any]]:
    """Wait for a foreground container to exit; its exit status becomes ours (podman's codes)."""
    exit_info = c.wait(name)
    return exit_status(exit_info), _describe(c, name)


def exit_status(exit_info: dict[str, Any]) -> int:
    """A shell's view of how the container ended: its code, 128+signal, or 125 (berth failed)."""
    if exit_info.get("exit_code") is not None:
        return int(exit_info["exit_code"])
    if exit_info.get("signal"):
        import signal

        try:
            return 128 + int(signal.Signals[f"SIG{exit_info['signal']}"])
        except KeyError:
            return 137
    return 125


def run_create(args: argparse.Namespace) -> Result:
    spec = _parse(spec_from_args(args))
    outcome = _containers().create(spec)
    return Result(
        data={"name": spec.name, "spec_hash": spec.spec_hash},
        changed=True,
        actions=outcome.applied,
        warnings=outcome.warnings,
        text=lambda: spec.name,
    )


def _each(args: argparse.Namespace, op: str, **kwargs: Any) -> Result:
    c = _containers()
    applied, warnings = [], []
    for name in args.names:
        outcome = getattr(c, op)(name, **kwargs)
        applied += outcome.applied
        warnings += outcome.warnings
    return Result(
        data={"names": args.names},
        changed=bool(applied),
        actions=applied,
        warnings=warnings,
        text=lambda: "\n".join(args.names),
    )


def run_start(args: argparse.Namespace) -> Result:
    return _each(args, "start")


def run_stop(args: argparse.Namespace) -> Result:
    return _each(args, "stop", timeout=args.time)


def run_restart(args: argparse.Namespace) -> Result:
    return _each(args, "restart")


def run_exec(args: argparse.Namespace) -> Result:
    """Replace this process with the shim's `exec`: stdio, signals and exit status pass straight through."""
    import json
    import os

    from berth.cli.container_args import pairs
    from berth.containers.config import SHIM
    from berth.containers.paths import ContainerPaths
    from berth.errors import Conflict

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise InvalidInput("exec needs a command")
    observed = _containers().require(args.name)
    if not observed.running or not observed.live.main_pid:
        raise Conflict(f"container {args.name} is not running")
    request: dict[str, Any] = {
        "args": command,
        "env": pairs(args.env, "--env"),
        "user": args.user,
        "workdir": args.workdir,
        "interactive": args.interactive,
        "tty": args.tty,
        "term": os.environ.get("TERM"),
    }
    if args.tty and os.isatty(1):
        size = os.get_terminal_size(1)
        request["winsize"] = [size.lines, size.columns]
    shim = [sys.executable, "-S", str(SHIM), "exec", str(ContainerPaths.of(args.name).config)]
    sys.stdout.flush()
    os.execv(sys.executable, [*shim, str(observed.live.main_pid), json.dumps(request)])


def run_stats(args: argparse.Namespace) -> Result:
    c = _containers()
    names = args.names or [n for n in c.names() if c.observe(n).running]
    rows = [c.stats(name) for name in names]

    def text() -> str:
        lines = [f"{'NAME':<24} {'CPU s':>9} {'MEMORY':>12} {'LIMIT':>12} {'TASKS':>6}"]
        for r in rows:
            mem = f"{r['memory_bytes'] / 2**20:.1f}MiB" if r["memory_bytes"] is not None else "-"
            limit = f"{r['memory_max'] / 2**20:.0f}MiB" if isinstance(r["memory_max"], int) else "-"
            cpu = f"{r['cpu_ns'] / 1e9:.3f}" if r["cpu_ns"] is not None else "-"
            lines.append(f"{r['name']:<24} {cpu:>9} {mem:>12} {limit:>12} {r['tasks'] or '-':>6}")
        return "\n".join(lines)

    return Result(data=rows, text=text)


def run_update(args: argparse.Namespace) -> Result:
    keys = (
        "memory_max",
        "memory_high",
        "memory_swap_max",
        "cpu_quota",
        "cpu_weight",
        "io_weight",
        "tasks_max",
        "cpus",
    )
    changes = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    changes.update(device_limits(args))
    if not changes:
        raise InvalidInput("update needs at least one resource flag")
    outcome = _containers().update(args.name, changes)
    return Result(
        data={"name": args.name, "resources": changes},
        changed=bool(outcome.applied),
        actions=outcome.applied,
        warnings=outcome.warnings,
        text=lambda: args.name,
    )


def run_kill(args: argparse.Namespace) -> Result:
    import signal

    text = str(args.signal).upper().removeprefix("SIG")
    try:
        number = int(text) if text.isdigit() else int(signal.Signals[f"SIG{text}"])
    except KeyError:
        raise InvalidInput(f"unknown signal {args.signal!r}") from None
    return _each(args, "kill", signal=number)


def run_rm(args: argparse.Namespace) -> Result:
    """`rm -f` kills a running container at once (SIGKILL), as `podman rm -f -t 0`; -t N waits N s."""
    if args.time is not None and not args.force:
        raise InvalidInput("rm -t needs -f: only a forced removal stops a running container")
    timeout = (0 if args.time is None else args.time) if args.force else None
    return _each(args, "remove", force=args.force, timeout=timeout)


def run_inspect(args: argparse.Namespace) -> Result:
    c = _containers()
    for name in args.names:
        c.require(name)
    data = [_describe(c, name) for name in args.names]
    return Result(data=data)


def run_ps(args: argparse.Namespace) -> Result:
    from berth.containers.observe import observe_all

    c = _containers()
    names = c.names()
    rows = [_describe(c, name, o) for name, o in zip(names, observe_all(c.systemd, names), strict=True)]
    if not args.all:
        rows = [r for r in rows if r["status"] == "running"]

    def text() -> str:
        lines = [f"{'NAME':<24} {'STATUS':<16} {'PID':>8}  COMMAND"]
        for r in rows:
            argv = r["argv"] or []
            status = r["status"] if r["status"] != "exited" else _exit_text(r["exit"] or {})
            lines.append(f"{r['name']:<24} {status:<16} {r['pid'] or '-':>8}  {' '.join(argv)[:60]}")
        return "\n".join(lines)

    return Result(data=rows, text=text)


def _exit_text(exit_info: dict[str, Any]) -> str:
    reason = exit_info.get("reason")
    if reason == "exited":
        return f"exited({exit_info.get('exit_code')})"
    if reason == "signal":
        return f"killed({exit_info.get('signal')})"
    return str(reason or "exited")


def run_logs(args: argparse.Namespace) -> Result:
    import subprocess

    c = _containers()
    c.require(args.name)
    cmd = [
        "journalctl",
        "--no-pager",
        f"_SYSTEMD_UNIT=berth-{args.name}.service",
        f"SYSLOG_IDENTIFIER={args.name}",
    ]
    if args.since:
        cmd.append(f"--since={args.since}")
    if args.tail is not None:
        cmd.append(f"--lines={args.tail}")
    if getattr(args, "json", False):
        if args.follow:
            raise InvalidInput("--follow cannot be combined with --json")
        import json

        out = subprocess.run([*cmd, "--output=json"], capture_output=True, text=True, check=False).stdout
        entries = [json.loads(line) for line in out.splitlines() if line.strip()]
        lines = [{"time_usec": int(e["__REALTIME_TIMESTAMP"]), "message": e.get("MESSAGE")} for e in entries]
        return Result(data=lines)
    if args.follow:
        cmd.append("--follow")
    subprocess.run([*cmd, "--output=cat"], check=False)
    return Result(text=lambda: "")


def run_apply(args: argparse.Namespace) -> Result:
    from berth.containers.plan import STATES

    doc = read_json_input(args.file)
    if not isinstance(doc, dict) or "state" not in doc:
        raise InvalidInput('container apply takes {"state": ..., "spec": {...}} (spec not needed for absent)')
    state = doc["state"]
    if state not in STATES:
        raise InvalidInput(f"state {state!r} is not one of {', '.join(STATES)}")
    spec = _parse(doc["spec"]) if state != "absent" or "spec" in doc else None
    name = spec.name if spec is not None else doc.get("name")
    if not name:
        raise InvalidInput("container apply: a name is needed (spec.name, or name for absent)")
    c = _containers()
    before = _describe(c, name)
    outcome = c.converge(spec, state, name, check=args.check)
    after = before if args.check else _describe(c, name)
    diff = {
        "before": {"status": before["status"], "spec": before["spec"]},
        "after": {
            "status": "would change" if args.check and outcome.planned else after["status"],
            "spec": spec.to_json() if spec is not None and state != "absent" else None,
        },
    }
    actions = outcome.planned if args.check else outcome.applied
    return Result(
        data={**after, "check_mode": args.check},
        changed=bool(actions),
        actions=actions,
        warnings=outcome.warnings,
        diff=diff,
    )
