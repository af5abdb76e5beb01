"""The last journal lines of a unit, to explain a failed job.

Read with `journalctl -o json` (one JSON object per line) so nothing parses human output.
journald stores messages asynchronously and from several senders, so right after a job fails
the journal may hold some of its lines but not yet the one that says why. `tail` therefore polls
briefly until systemd's own closing line for the failure is in.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from typing import Any

RETRIES = 40  # 2 s at most, on the error path only: journald may lag on a loaded host
RETRY_DELAY = 0.05
UNIT_FAILED = "be02cf6855d2428ba40df7e9d022f03d"
UNIT_FAILURE_RESULT = "d9b373ed55a64feb8242e02dbe79a49c"
CLOSING_IDS = frozenset({UNIT_FAILED, UNIT_FAILURE_RESULT})

# MESSAGE_IDs of systemd's own lifecycle lines ("Starting...", "Main process exited",
# "Failed with result", "Failed to start", "Deactivated successfully"...): they say *that* a unit
# failed, never *why*, so `cause` skips them.
LIFECYCLE_IDS = frozenset(
    {
        "7d4958e842da4a758f6c1cdc7b36dcc5",  # UNIT_STARTING
        "39f53479d3a045ac8e11786248231fbf",  # UNIT_STARTED
        UNIT_FAILED,
        "de5b426a63be47a7b6ac3eaac82e2f6f",  # UNIT_STOPPING
        "9d1aaa27d60140bd96365438aad20286",  # UNIT_STOPPED
        "98e322203f7a4ed290d09fe03c09fe15",  # UNIT_PROCESS_EXIT
        UNIT_FAILURE_RESULT,
        "7ad2d189f7e94e70a38c781354912448",  # UNIT_SUCCESS
        "ae8f7b866b0347b9af31fe1c80b127c0",  # UNIT_RESOURCES
    }
)


@dataclass(frozen=True)
class Entry:
    message: str
    message_id: str | None


def _message(entry: dict[str, Any]) -> str | None:
    msg = entry.get("MESSAGE")
    if isinstance(msg, list):  # journald sends non-UTF-8 messages as a byte array
        return bytes(b for b in msg if isinstance(b, int)).decode("utf-8", "replace")
    return msg if isinstance(msg, str) else None


def _read(argv: list[str]) -> list[Entry]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    entries: list[Entry] = []
    for line in proc.stdout.splitlines():
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue
        msg = _message(doc) if isinstance(doc, dict) else None
        if msg is not None:
            entries.append(Entry(msg, doc.get("MESSAGE_ID")))
    return entries


def tail(unit: str, lines: int = 10, since: float | None = None) -> list[Entry]:
    """The unit's last `lines` journal entries (since `since`, an epoch time); [] if unreadable.

    Waits (at most RETRIES * RETRY_DELAY) for the line in which systemd reports the failure and
    for a line that says why: the two come from different processes and reach journald in any order.
    """
    # Not `-u`: systemd's exec child reports why it failed ("Failed at step EXEC ...") with
    # UNIT=<unit>, and it is often gone before journald could read its cgroup, so that line
    # carries no _SYSTEMD_UNIT and `-u` would miss it.
    argv = [
        "journalctl",
        "-n",
        str(lines),
        "-o",
        "json",
        "--no-pager",
        f"_SYSTEMD_UNIT={unit}",
        "+",
        f"UNIT={unit}",
    ]
    if since is not None:
        argv.append(f"--since=@{int(since)}")
    entries = _read(argv)
    for _ in range(RETRIES):
        closed = any(e.message_id in CLOSING_IDS for e in entries)
        if closed and any(e.message_id not in LIFECYCLE_IDS for e in entries):
            break
        time.sleep(RETRY_DELAY)
        entries = _read(argv)
    return entries


def cause(entries: list[Entry]) -> str | None:
    """The last line that says why (not merely that) the unit failed."""
    for entry in reversed(entries):
        if entry.message_id not in LIFECYCLE_IDS:
            return entry.message
    return entries[-1].message if entries else None
