"""What both systemd clients share: names on the bus, the JobRemoved rules, failure reports.

There are two clients with the same methods: `berth.systemd.client.SystemdClient` (asyncio, over
dbus-fast or dbus-next) and `berth.systemd.native.NativeClient` (blocking, over berth's own small
D-Bus connection, without asyncio: what the CLI uses by default, because it starts faster). This
module imports neither asyncio nor a D-Bus library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from berth.errors import JobFailed, Timeout
from berth.systemd.properties import Property
from berth.systemd.status import UnitState

if TYPE_CHECKING:
    from berth.systemd.journal import Entry

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
PROPERTIES = "org.freedesktop.DBus.Properties"
UNIT = "org.freedesktop.systemd1.Unit"
SERVICE = "org.freedesktop.systemd1.Service"
SLICE = "org.freedesktop.systemd1.Slice"
JOB_REMOVED_MATCH = (
    f"type='signal',sender='{SYSTEMD}',path='{MANAGER_PATH}',interface='{MANAGER}',member='JobRemoved'"
)
UNIT_REMOVED_MATCH = (
    f"type='signal',sender='{SYSTEMD}',path='{MANAGER_PATH}',interface='{MANAGER}',member='UnitRemoved'"
)
DEFAULT_JOB_TIMEOUT = 120.0  # longer than systemd's own default start/stop timeouts (90 s)
FINISHED_KEPT = 256
SIGKILL = 9
NO_SUCH_PROCESS = "org.freedesktop.systemd1.NoSuchProcess"


def unit_changes_match(path: str) -> str:
    """The match rule for PropertiesChanged of the unit at object path `path`."""
    return (
        f"type='signal',sender='{SYSTEMD}',path='{path}',interface='{PROPERTIES}',member='PropertiesChanged'"
    )


def job_removed(member: str | None, interface: str | None, body: list[Any]) -> tuple[str, str] | None:
    """(job path, result) of a JobRemoved signal; None for any other signal."""
    if member != "JobRemoved" or interface != MANAGER or len(body) != 4:
        return None
    _id, job, _unit, result = body
    return str(job), str(result)


def transient_properties(
    properties: Iterable[Property], variant: Callable[[str, Any], Any]
) -> tuple[list[list[Any]], list[int]]:
    """StartTransientUnit's a(sv), and the file descriptors it sends (an `h` is an index into them)."""
    fds: list[int] = []
    props = []
    for p in properties:
        value = p.value
        if p.signature == "h":
            fds.append(int(value))
            value = len(fds) - 1
        props.append([p.name, variant(p.signature, value)])
    return props, fds


def job_timeout_error(verb: str, unit: str, job: str, timeout: float) -> Timeout:
    return Timeout(
        f"the {verb} job for {unit} did not finish within {timeout:g}s; it is still queued in systemd",
        unit=unit,
        job=job,
    )


def job_failed(
    unit: str, verb: str, job: str, result: str, state: UnitState, entries: list[Entry]
) -> JobFailed:
    """A JobFailed that says what state the job left the unit in, and its last words."""
    from berth.systemd.journal import cause

    why = cause(entries)
    status = f", exit status {state.exec_main_status}" if state.exec_main_status else ""
    last = f": {why}" if why else ""
    return JobFailed(
        f"{verb} of {unit} failed (job result {result!r}; unit is "
        f"{state.active_state}/{state.sub_state}, result {state.result!r}{status}){last}",
        unit=unit,
        job=job,
        job_result=result,
        **state.to_json(),
        journal=[e.message for e in entries],
    )
