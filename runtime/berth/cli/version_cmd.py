"""`berth version`: what the modules check before they talk to a host."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from berth.cli.common import add_command
from berth.cli.result import Result
from berth.version import PROTOCOL_VERSION, __version__


def register(sub: Any) -> None:
    add_command(sub, "version", run, "print the runtime and protocol versions")


def run(args: argparse.Namespace) -> Result:
    import platform  # here: importing it costs every other command milliseconds

    data = {
        "runtime": __version__,
        "protocol": PROTOCOL_VERSION,
        "python": platform.python_version(),
        "executable": sys.executable,
    }
    return Result(data=data, text=lambda: f"berth {__version__} (protocol {PROTOCOL_VERSION})")
