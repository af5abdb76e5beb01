"""`berth monitor NAME --revision N`: the liveness monitor of a deployment (berth.deployments.monitor).

It is what the unit `berth-monitor@NAME.service` runs, started by `berth deploy|rollback|restore`;
run by hand it monitors in the foreground until the revision no longer serves.
"""

from __future__ import annotations

import argparse
from typing import Any

from berth.cli.common import add_command
from berth.cli.result import Result


def register(sub: Any) -> None:
    p = add_command(
        sub, "monitor", run_monitor, "keep probing a deployment's liveness checks (its unit runs this)"
    )
    p.add_argument("name")
    p.add_argument("--revision", required=True, type=int, metavar="REV", help="the serving revision to watch")


def run_monitor(args: argparse.Namespace) -> Result:
    from berth.deployments.monitor import Monitor
    from berth.deployments.spec import validate_deployment_name

    code = Monitor(validate_deployment_name(args.name), args.revision).run()
    return Result(data={"name": args.name, "revision": args.revision}, exit_code=code, text=lambda: "")
