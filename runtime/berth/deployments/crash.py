"""Fault injection for the durability tests: `BERTH_DEPLOY_CRASH_AT=<point>` SIGKILLs this process.

A real kill -9 at a named point between the steps of a deploy (the state of the step before is
written, the step after has not begun), so tests reach every window deterministically instead of
racing a timer. Unset, this is one environment lookup per step.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "revision-recorded",  # record written, images held, no container yet
    "containers-created",
    "old-stopped",  # stop-first: the old revision is down, the new one not started
    "started",
    "checked",  # gate passed, `healthy` written
    "switching",  # the commit point written, no port moved yet
    "switched",  # ports moved, `active` not written yet
    "activated",  # `active` written, the old revision still running
    "retired",  # the old revision stopped, the operation still open
)


def point(name: str) -> None:
    if os.environ.get("BERTH_DEPLOY_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
