"""The container state machine, and what a container's state is once systemd has had its say.

Persisted states move only along TRANSITIONS, through `advance`; a record in a transitional
state (`creating`, `removing`) after a crash tells the next run what to finish or undo.
"""

from __future__ import annotations

from typing import Any

from berth.errors import Conflict

CREATING, CREATED, RUNNING, EXITED, REMOVING = "creating", "created", "running", "exited", "removing"

TRANSITIONS: dict[str, frozenset[str]] = {
    CREATING: frozenset({CREATED, REMOVING}),
    CREATED: frozenset({RUNNING, EXITED, REMOVING}),
    RUNNING: frozenset({RUNNING, EXITED, REMOVING}),
    EXITED: frozenset({RUNNING, EXITED, REMOVING}),
    REMOVING: frozenset({REMOVING}),
}


def advance(record: dict[str, Any], new: str) -> None:
    old = record["status"]
    if new not in TRANSITIONS[old]:
        raise Conflict(f"container {record['name']} is {old}; it cannot become {new}")
    record["status"] = new


def exit_reason(exit_info: dict[str, Any] | None, start_error: str | None) -> dict[str, Any] | None:
    """Why a container stopped, in the words a user wants: exit code, signal, OOM, or start error."""
    if start_error:
        return {"reason": "failed-to-start", "error": start_error, "exit_code": None, "signal": None}
    if not exit_info:
        return None
    code, status = exit_info.get("exit_code"), exit_info.get("exit_status")
    if exit_info.get("oom_killed"):
        reason = "oom-killed"
    elif code == "exited":
        reason = "exited"
    elif code in ("killed", "dumped"):
        reason = "signal"
    else:
        reason = exit_info.get("service_result") or "unknown"
    return {
        "reason": reason,
        "exit_code": int(str(status)) if code == "exited" and str(status).isdigit() else None,
        "signal": status if code in ("killed", "dumped") else None,
        "service_result": exit_info.get("service_result"),
    }
