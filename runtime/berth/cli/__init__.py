"""The `berth` command line.

`main` is the one place where failures become output: every command returns a `Result` or
raises a `BerthError`, and only here are they printed (as text, or as JSON with `--json`)
and mapped to exit codes. Command modules import their heavy dependencies lazily, inside
their handlers, so that `berth version` and friends start fast.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from berth.cli.common import json_parent
from berth.cli.output import emit_error, emit_result
from berth.cli.result import Result
from berth.errors import STORAGE_ERRNOS, BerthError, storage_error

# The command modules, in the order `berth --help` lists their commands.
COMMAND_MODULES = (
    "version_cmd",
    "lab_cmd",
    "unit_cmd",
    "container_cmd",
    "system_cmd",
    "slice_cmd",
    "image_cmd",
    "volume_cmd",
    "network_cmd",
    "deploy_cmd",
    "monitor_cmd",
)
# Which module registers each top-level command. A command line that names one gets a parser
# with that command's subparser only: building all ~70 subparsers (and importing every module)
# costs a short-lived `berth run` tens of milliseconds. Help, errors and parsing are the same,
# since a subcommand's parser never depends on its siblings; no command word (or an unknown
# one) builds them all. tests/unit/runtime/test_cli_parser.py keeps this table true.
COMMANDS = {
    "version": "version_cmd",
    "lab": "lab_cmd",
    "unit": "unit_cmd",
    "run": "container_cmd",
    "create": "container_cmd",
    "stop": "container_cmd",
    "start": "container_cmd",
    "restart": "container_cmd",
    "inspect": "container_cmd",
    "exec": "container_cmd",
    "stats": "container_cmd",
    "update": "container_cmd",
    "kill": "container_cmd",
    "rm": "container_cmd",
    "ps": "container_cmd",
    "logs": "container_cmd",
    "container": "container_cmd",
    "system": "system_cmd",
    "restore": "system_cmd",
    "slice": "slice_cmd",
    "image": "image_cmd",
    "volume": "volume_cmd",
    "network": "network_cmd",
    "deploy": "deploy_cmd",
    "rollback": "deploy_cmd",
    "history": "deploy_cmd",
    "status": "deploy_cmd",
    "undeploy": "deploy_cmd",
    "monitor": "monitor_cmd",
}


def command_module(name: str) -> ModuleType:
    return importlib.import_module(f"berth.cli.{name}")


def command_word(argv: Sequence[str]) -> str | None:
    """The command a command line names: its first word that is not an option.

    The top-level parser's only options (-h, --help, --json) take no value, so that word is
    the subcommand argparse will pick.
    """
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv` (every command's, when `argv` is None or names no known command)."""
    parser = argparse.ArgumentParser(
        prog="berth",
        description="Daemonless, systemd-native containers.",
        parents=[json_parent()],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    word = command_word(argv) if argv is not None else None
    if word in COMMANDS:
        command_module(COMMANDS[word]).register(_OneCommand(sub, word))
    else:
        for name in COMMAND_MODULES:
            command_module(name).register(sub)
    return parser


class _OneCommand:
    """The subparsers of the top-level parser, building the parser of one command only: the
    module registers all of its commands, but the others get a stand-in that ignores them."""

    def __init__(self, sub: Any, command: str) -> None:
        self._sub = sub
        self._command = command

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        return self._sub.add_parser(name, **kwargs) if name == self._command else _Ignored()


class _Ignored:
    """Accepts every parser call (add_argument, set_defaults, add_subparsers...) and ignores it."""

    def __getattr__(self, name: str) -> Any:
        return self._ignore

    def _ignore(self, *args: Any, **kwargs: Any) -> _Ignored:
        return self


def main(argv: Sequence[str] | None = None) -> int:
    """The `berth` program (argv None: this process's arguments; the process ends after it)."""
    if argv is not None:
        return run(argv)
    try:
        return run(sys.argv[1:])
    finally:
        # The process ends next: nothing it made needs the cycle collector any more, and the
        # collection at interpreter exit costs a short command like `berth run` ~10 ms.
        gc.freeze()


def run(argv: Sequence[str]) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    as_json: bool = bool(getattr(args, "json", False))
    command: str = getattr(args, "command_name", args.command)
    try:
        result: Result = args.handler(args)
    except BerthError as exc:
        emit_error(command, exc, as_json)
        return exc.exit_code
    except OSError as exc:  # a full or read-only disk outside any plan step; anything else is a bug
        if exc.errno not in STORAGE_ERRNOS:
            raise
        typed = storage_error(exc, "cannot write")
        emit_error(command, typed, as_json)
        return typed.exit_code
    except KeyboardInterrupt:
        emit_error(command, BerthError("interrupted"), as_json)
        return 130
    emit_result(command, result, as_json)
    return result.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
