"""podman-style flags of `berth run` / `berth create`, turned into a container spec document."""

from __future__ import annotations

import argparse
from typing import Any

from berth.cli.common import read_json_input
from berth.errors import InvalidInput


def add_spec_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-f", "--file", metavar="SPEC", help="a JSON container spec (or - for stdin); flags override it"
    )
    p.add_argument("--name")
    p.add_argument("--rootfs", metavar="DIR", help="a directory used as the container's only layer")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user", metavar="USER[:GROUP]")
    p.add_argument("--hostname")
    p.add_argument("--entrypoint", metavar="CMD", help="replace the entrypoint (one word)")
    p.add_argument(
        "-v",
        "--volume",
        action="append",
        default=[],
        metavar="SRC:DST[:ro][,idmap][,nocopy]",
        help="bind mount a host path (absolute SRC) or a named volume; idmap: the host's ids 0.. are "
        "the container's 0.. on this bind mount (with --userns); nocopy: a new volume does not get "
        "the image's files",
    )
    p.add_argument("--tmpfs", action="append", default=[], metavar="DST[:size=N]")
    p.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a file handed in as a systemd credential, visible as /run/secrets/NAME",
    )
    p.add_argument("--read-only", action="store_true", default=None)
    p.add_argument("--restart", metavar="no|on-failure[:N]|always")
    p.add_argument("--stop-signal")
    p.add_argument("--stop-timeout", type=int)
    p.add_argument(
        "--sdnotify",
        choices=("runtime", "container"),
        help="container: the app sends READY=1 to $NOTIFY_SOCKET itself; `run -d` returns then",
    )
    p.add_argument("--start-timeout", type=int, metavar="SECONDS", help="how long a start may take")
    p.add_argument("--cap-add", action="append", default=[])
    p.add_argument("--cap-drop", action="append", default=[])
    p.add_argument("--privileged", action="store_true", default=None)
    p.add_argument(
        "--security-opt", action="append", default=[], metavar="no-new-privileges|seccomp=unconfined"
    )
    p.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--userns",
        metavar="host|auto|UID:GID:SIZE",
        help="root in a user namespace: auto (a range of its own from the pool) or an explicit range",
    )
    p.add_argument("--slice", help="a group name (berth-NAME.slice) or a full slice unit name")
    p.add_argument(
        "--network",
        metavar="none|host|bridge|NAME[,NAME...]",
        help="network mode, or the networks to join (bridge: the default network berth)",
    )
    p.add_argument(
        "-p",
        "--publish",
        action="append",
        default=[],
        metavar="[HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]",
        help="publish a container port on the host (needs a network)",
    )
    p.add_argument("-m", "--memory", metavar="SIZE", help="MemoryMax")
    p.add_argument("--memory-high", metavar="SIZE")
    p.add_argument("--memory-swap-max", metavar="SIZE")
    p.add_argument("--cpu-quota", metavar="PERCENT", help="e.g. 50%% of one CPU")
    p.add_argument("--cpu-weight", type=int)
    p.add_argument("--io-weight", type=int)
    p.add_argument("--pids-limit", metavar="N", help="TasksMax (default 2048)")
    p.add_argument("--cpuset-cpus", metavar="LIST", help="pin to CPUs, e.g. 0-1")
    add_device_limit_flags(p)
    p.add_argument("--nice", type=int)
    p.add_argument("image", nargs="?", help="an image reference (or use --rootfs)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")


# --flag PATH:LIMIT (repeatable, as podman's) -> resources.<field>
DEVICE_LIMIT_FLAGS = (
    ("--device-read-bps", "io_read_bandwidth_max", "PATH:RATE", "IOReadBandwidthMax, e.g. /dev/vda:10M"),
    ("--device-write-bps", "io_write_bandwidth_max", "PATH:RATE", "IOWriteBandwidthMax"),
    ("--device-read-iops", "io_read_iops_max", "PATH:N", "IOReadIOPSMax (cgroup v2)"),
    ("--device-write-iops", "io_write_iops_max", "PATH:N", "IOWriteIOPSMax (cgroup v2)"),
)


def add_device_limit_flags(p: argparse.ArgumentParser) -> None:
    for flag, field, meta, text in DEVICE_LIMIT_FLAGS:
        p.add_argument(flag, dest=field, action="append", default=None, metavar=meta, help=text)


def device_limits(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """The device-limit flags given, as resources fields (a device node or a file on the disk)."""
    out: dict[str, dict[str, str]] = {}
    for flag, field, meta, _ in DEVICE_LIMIT_FLAGS:
        for item in getattr(args, field) or []:
            path, sep, limit = item.rpartition(":")
            if not sep or not path or not limit:
                raise InvalidInput(f"{flag} {item!r}: expected {meta}")
            out.setdefault(field, {})[path] = limit
    return out


def pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{flag} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _userns(text: str) -> str | dict[str, Any]:
    """--userns UID:GID:SIZE as the spec's mapping; any other word is checked by the spec."""
    parts = text.split(":")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return dict(zip(("uid", "gid", "size"), map(int, parts), strict=True))
    return text


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    doc: dict[str, Any] = read_json_input(args.file) if args.file else {}
    if not isinstance(doc, dict):
        raise InvalidInput("the spec file must hold a JSON object")
    image, command = args.image, list(args.command or [])
    if args.rootfs:
        doc["rootfs"] = args.rootfs
        if image is not None:  # with --rootfs, every positional word is the command
            command = [image, *command]
    elif image is not None:
        doc["image"] = image
    if command and command[0] == "--":
        command = command[1:]
    if command:
        doc["command"] = command
    simple = {
        "name": args.name, "workdir": args.workdir, "user": args.user, "hostname": args.hostname,
        "read_only": args.read_only, "restart": args.restart, "stop_signal": args.stop_signal,
        "stop_timeout": args.stop_timeout, "privileged": args.privileged, "slice": args.slice,
        "sdnotify": args.sdnotify, "start_timeout": args.start_timeout,
    }  # fmt: skip
    doc.update({k: v for k, v in simple.items() if v is not None})
    if args.network is not None:
        first, *more = args.network.split(",")
        doc["network"] = first
        if more:
            doc["networks"] = more
    if args.userns is not None:
        doc["userns"] = _userns(args.userns)
    if args.publish:
        doc["ports"] = list(doc.get("ports", [])) + args.publish
    if args.entrypoint is not None:
        doc["entrypoint"] = [args.entrypoint] if args.entrypoint else []
    if args.env:
        doc["env"] = {**doc.get("env", {}), **pairs(args.env, "--env")}
    if args.label:
        doc["labels"] = {**doc.get("labels", {}), **pairs(args.label, "--label")}
    if args.cap_add:
        doc["cap_add"] = doc.get("cap_add", []) + args.cap_add
    if args.cap_drop:
        doc["cap_drop"] = doc.get("cap_drop", []) + args.cap_drop
    for opt in args.security_opt:
        if opt in ("no-new-privileges", "no-new-privileges:true"):
            doc["no_new_privileges"] = True
        elif opt == "seccomp=unconfined":
            doc["seccomp"] = "unconfined"
        else:
            raise InvalidInput(
                f"--security-opt {opt!r} is not supported (no-new-privileges, seccomp=unconfined)"
            )
    mounts = list(doc.get("mounts", []))
    for vol in args.volume:
        parts = vol.split(":")
        options = set(parts[2].split(",")) if len(parts) == 3 else set()
        known = {"ro", "rw", "idmap", "nocopy"}
        if len(parts) not in (2, 3) or not options <= known or {"ro", "rw"} <= options:
            raise InvalidInput(f"--volume {vol!r}: expected SRC:DST[:OPTIONS] (ro or rw, idmap, nocopy)")
        mount: dict[str, Any] = {
            "type": "bind" if parts[0].startswith("/") else "volume",
            "source": parts[0],
            "target": parts[1],
            "read_only": "ro" in options,
        }
        for flag in ("idmap", "nocopy"):
            if flag in options:
                mount[flag] = True
        mounts.append(mount)
    for tmp in args.tmpfs:
        target, _, opts = tmp.partition(":")
        entry: dict[str, Any] = {"type": "tmpfs", "target": target}
        for opt in filter(None, opts.split(",")):
            key, _, value = opt.partition("=")
            if key not in ("size", "mode") or not value:
                raise InvalidInput(f"--tmpfs {tmp!r}: options are size=N and mode=OCTAL")
            entry[key] = value
        mounts.append(entry)
    if mounts:
        doc["mounts"] = mounts
    if args.secret:
        doc["secrets"] = doc.get("secrets", []) + [
            {"name": k, "source": v} for k, v in pairs(args.secret, "--secret").items()
        ]
    res = dict(doc.get("resources", {}))
    for key, value in (
        ("memory_max", args.memory), ("memory_high", args.memory_high),
        ("memory_swap_max", args.memory_swap_max), ("cpu_quota", args.cpu_quota),
        ("cpu_weight", args.cpu_weight), ("io_weight", args.io_weight), ("tasks_max", args.pids_limit),
        ("cpus", args.cpuset_cpus), ("nice", args.nice),
    ):  # fmt: skip
        if value is not None:
            res[key] = value
    res.update(device_limits(args))
    if res:
        doc["resources"] = res
    if "name" not in doc:
        import os

        doc["name"] = f"c-{os.urandom(5).hex()}"  # secrets.token_hex(5), without its imports
    return doc
