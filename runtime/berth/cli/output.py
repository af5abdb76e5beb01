"""Rendering of results and errors: the JSON envelope is the versioned contract."""

from __future__ import annotations

import json
import sys
from typing import Any

from berth.cli.result import Result
from berth.errors import BerthError
from berth.version import PROTOCOL_VERSION, __version__


def envelope(command: str) -> dict[str, Any]:
    return {"protocol": PROTOCOL_VERSION, "runtime": __version__, "command": command}


def emit_result(command: str, result: Result, as_json: bool) -> None:
    if as_json:
        out = envelope(command)
        out.update(
            ok=True,
            changed=result.changed,
            actions=[a.to_json() for a in result.actions],
            warnings=result.warnings,
            data=result.data,
        )
        if result.diff is not None:
            out["diff"] = result.diff
        json.dump(out, sys.stdout, sort_keys=True)
        sys.stdout.write("\n")
        return
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.text is not None:
        text = result.text()
        if text:
            print(text)
    elif result.data is not None:
        print(json.dumps(result.data, indent=2, sort_keys=True))


def emit_error(command: str, error: BerthError, as_json: bool) -> None:
    if as_json:
        out = envelope(command)
        out.update(ok=False, error=error.to_json())
        applied = getattr(error, "applied", None)
        if applied:
            out["actions"] = [a.to_json() for a in applied]
            out["changed"] = True
        json.dump(out, sys.stdout, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(f"berth: error: {error.message}", file=sys.stderr)
