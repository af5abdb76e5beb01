"""The `berth` command line.

`main` is the one place where failures become output: every command returns a `Result` or
raises a `BerthError`, and only here are they printed (as text, or as JSON with `--json`)
and mapped to exit codes. Command modules import their heavy dependencies lazily, inside
their handlers, so that `berth version` and friends start fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from berth.cli import (
    container_cmd,
    deploy_cmd,
    image_cmd,
    lab_cmd,
    network_cmd,
    slice_cmd,
    system_cmd,
    unit_cmd,
    version_cmd,
)
from berth.cli.common import json_parent
from berth.cli.output import emit_error, emit_result
from berth.cli.result import Result
from berth.errors import BerthError

COMMAND_MODULES = (
    version_cmd,
    lab_cmd,
    unit_cmd,
    container_cmd,
    system_cmd,
    slice_cmd,
    image_cmd,
    network_cmd,
    deploy_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="berth",
        description="Daemonless, systemd-native containers.",
        parents=[json_parent()],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    as_json: bool = bool(getattr(args, "json", False))
    command: str = getattr(args, "command_name", args.command)
    try:
        result: Result = args.handler(args)
    except BerthError as exc:
        emit_error(command, exc, as_json)
        return exc.exit_code
    except KeyboardInterrupt:
        emit_error(command, BerthError("interrupted"), as_json)
        return 130
    emit_result(command, result, as_json)
    return result.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
