"""Argument helpers shared by the command modules."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from berth.cli.result import Result
from berth.errors import InvalidInput

Handler = Callable[[argparse.Namespace], Result]


def json_parent() -> argparse.ArgumentParser:
    """`--json` is accepted both before and after the subcommand."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine-readable output (the versioned contract the Ansible modules use)",
    )
    return parent


def add_command(
    sub: Any, name: str, handler: Handler, help_text: str, command_name: str | None = None
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=help_text, parents=[json_parent()]
    )
    parser.set_defaults(handler=handler, command_name=command_name or name)
    return parser


def read_json_input(source: str) -> Any:
    """Read a JSON document from a file path, or from stdin when `source` is `-`."""
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        raise InvalidInput(f"cannot read spec {source!r}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"spec is not valid JSON: {exc}") from exc
