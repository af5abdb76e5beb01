"""A blocking systemd client over berth's own D-Bus connection (`berth.systemd.wire`): no asyncio.

The same methods, rules and errors as the asyncio `SystemdClient` (see its module docstring: a
job path in a reply is not success, so `JobRemoved` is subscribed to before any job is created
and awaited after), written for one thread that blocks. It also watches units: `wait_for_unit`
returns when systemd signals a change of a unit, so a caller waiting for a container to exit
needs no polling.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from berth.errors import DBusCallFailed, JobFailed, NotFound, Timeout
from berth.systemd.jobs import (
    DEFAULT_JOB_TIMEOUT,
    FINISHED_KEPT,
    JOB_REMOVED_MATCH,
    MANAGER,
    MANAGER_PATH,
    NO_SUCH_PROCESS,
    PROPERTIES,
    SERVICE,
    SIGKILL,
    SYSTEMD,
    UNIT,
    UNIT_REMOVED_MATCH,
    job_failed,
    job_removed,
    job_timeout_error,
    transient_properties,
    unit_changes_match,
)
from berth.systemd.names import unit_object_path
from berth.systemd.properties import Property, from_dbus
from berth.systemd.status import UnitListEntry, UnitState
from berth.systemd.wire import CALL_TIMEOUT, Connection, Message, Variant, socket_path, system_bus_address

NAME = "native"
STOPPED_STATES = frozenset({"inactive", "failed"})


class NativeClient:
    """One connection to systemd; create with `NativeClient.connect()`."""

    backend_name = NAME

    def __init__(self, conn: Connection, job_timeout: float = DEFAULT_JOB_TIMEOUT) -> None:
        self.conn = conn
        self.job_timeout = job_timeout
        self._subscribed = False
        self._finished: dict[str, str] = {}
        self._watched: set[str] = set()  # object paths whose changes we receive
        self._stopped: set[str] = set()  # watched paths that signalled inactive, failed or removal
        conn.add_handler(self._on_signal)

    @classmethod
    def connect(cls, job_timeout: float = DEFAULT_JOB_TIMEOUT, address: str | None = None) -> NativeClient:
        address = address or system_bus_address()
        return cls(Connection.open(address, socket_path(address)), job_timeout)

    def close(self) -> None:
        self.conn.close()

    def _manager(
        self, member: str, signature: str = "", body: Sequence[Any] = (), unix_fds: Sequence[int] = ()
    ) -> Any:
        reply = self.conn.call(
            SYSTEMD, MANAGER_PATH, MANAGER, member, signature, body, CALL_TIMEOUT, unix_fds
        )
        return reply[0] if reply else None

    def _add_match(self, rule: str) -> None:
        self.conn.call(
            "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s", [rule]
        )

    # -- signals and jobs ---------------------------------------------------------------------
    def _on_signal(self, msg: Message) -> None:
        removed = job_removed(msg.member, msg.interface, msg.body)
        if removed is not None:
            job, result = removed
            self._finished[job] = result
            while len(self._finished) > FINISHED_KEPT:
                del self._finished[next(iter(self._finished))]
            return
        if msg.member == "UnitRemoved" and msg.interface == MANAGER and len(msg.body) == 2:
            if msg.body[1] in self._watched:
                self._stopped.add(str(msg.body[1]))
        elif msg.member == "PropertiesChanged" and msg.path in self._watched and len(msg.body) == 3:
            interface, changed, _invalidated = msg.body
            state = changed.get("ActiveState") if interface == UNIT else None
            if state is not None and from_dbus(state) in STOPPED_STATES:
                self._stopped.add(msg.path)

    def _subscribe(self) -> None:
        if self._subscribed:
            return
        self._add_match(JOB_REMOVED_MATCH)
        self._manager("Subscribe")
        self._subscribed = True

    def _wait_job(self, job: str, unit: str, verb: str, timeout: float | None) -> str:
        timeout = self.job_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while job not in self._finished:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise job_timeout_error(verb, unit, job, timeout)
            self.conn.wait_signal(remaining)
        return self._finished.pop(job)

    def _job_failed(self, unit: str, verb: str, job: str, result: str, since: float) -> JobFailed:
        from berth.systemd import journal

        try:
            state = self.unit_state(unit)
        except NotFound:
            state = UnitState.not_loaded(unit)
        return job_failed(unit, verb, job, result, state, journal.tail(unit, 10, since))

    def _run_job(
        self,
        unit: str,
        verb: str,
        member: str,
        signature: str,
        body: Sequence[Any],
        timeout: float | None,
        unix_fds: Sequence[int] = (),
    ) -> str:
        self._subscribe()
        since = time.time()
        job = str(self._manager(member, signature, body, unix_fds))
        result = self._wait_job(job, unit, verb, timeout)
        if result != "done":
            raise self._job_failed(unit, verb, job, result, since)
        return job

    def watch_unit(self, name: str) -> None:
        """Follow unit `name` from now on: its PropertiesChanged and UnitRemoved signals."""
        path = unit_object_path(name)
        self._stopped.discard(path)
        if path in self._watched:
            return
        self._subscribe()  # systemd sends unit signals only while someone is subscribed
        if not self._watched:
            self._add_match(UNIT_REMOVED_MATCH)
        self._add_match(unit_changes_match(path))
        self._watched.add(path)

    def wait_until_stopped(self, name: str, timeout: float) -> bool:
        """Block until watched unit `name` signals that it is inactive or failed or was removed
        (True), or `timeout` s pass (False). A unit that restarts (Restart=) passes through
        neither: callers look at the unit again either way."""
        path = unit_object_path(name)
        deadline = time.monotonic() + timeout
        while path not in self._stopped:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.conn.wait_signal(remaining)
        self._stopped.discard(path)
        return True

    # -- unit lifecycle -----------------------------------------------------------------------
    def start_transient(self, name: str, properties: Iterable[Property], timeout: float | None = None) -> str:
        """Start transient unit `name` (mode "fail"); return the finished job's path."""
        props, fds = transient_properties(properties, Variant)
        return self._run_job(
            name,
            "start",
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            [name, "fail", props, []],
            timeout,
            unix_fds=fds,
        )

    def stop(self, name: str, timeout: float | None = None) -> str:
        return self._run_job(name, "stop", "StopUnit", "ss", [name, "replace"], timeout)

    def stop_within(self, name: str, grace: float, timeout: float | None = None) -> str:
        """Stop `name`, SIGKILL to its main process if it still runs after `grace` s (as SystemdClient)."""
        self._subscribe()
        since = time.time()
        job = str(self._manager("StopUnit", "ss", [name, "replace"]))
        result = None
        if grace > 0:
            try:
                result = self._wait_job(job, name, "stop", grace)
            except Timeout:
                pass
        if result is None:
            try:
                self.kill(name, SIGKILL, "main")
            except NotFound:
                pass  # unloaded meanwhile: it has stopped
            except DBusCallFailed as exc:
                if exc.details.get("dbus_error") != NO_SUCH_PROCESS:
                    raise  # else its main process has exited already
            result = self._wait_job(job, name, "stop", timeout)
        if result != "done":
            raise self._job_failed(name, "stop", job, result, since)
        return job

    def kill(self, name: str, signal: int, whom: str = "all") -> None:
        self._manager("KillUnit", "ssi", [name, whom, signal])

    def reset_failed(self, name: str) -> None:
        self._manager("ResetFailedUnit", "s", [name])

    def set_unit_properties(self, name: str, properties: Iterable[Property], runtime: bool = True) -> None:
        props = [[p.name, Variant(p.signature, p.value)] for p in properties]
        self._manager("SetUnitProperties", "sba(sv)", [name, runtime, props])

    def reload(self) -> None:
        self._manager("Reload")

    # -- reading ------------------------------------------------------------------------------
    def version(self) -> str:
        reply = self.conn.call(SYSTEMD, MANAGER_PATH, PROPERTIES, "Get", "ss", [MANAGER, "Version"])
        return str(from_dbus(reply[0]))

    def get_unit(self, name: str) -> str:
        return str(self._manager("GetUnit", "s", [name]))

    def active_state(self, name: str) -> str:
        """The unit's ActiveState alone (one property: cheap for systemd); "inactive" if not loaded."""
        try:
            path = self.get_unit(name)
        except NotFound:
            return "inactive"
        reply = self.conn.call(SYSTEMD, path, PROPERTIES, "Get", "ss", [UNIT, "ActiveState"])
        return str(from_dbus(reply[0]))

    def properties(self, path: str, interface: str) -> dict[str, Any]:
        reply = self.conn.call(SYSTEMD, path, PROPERTIES, "GetAll", "s", [interface])
        return {k: from_dbus(v) for k, v in reply[0].items()}

    def property_values(
        self, paths: Sequence[str], interface: str, names: Sequence[str]
    ) -> list[dict[str, Any] | None]:
        """Properties `names` of the objects `paths` (None: gone), in one pipelined batch of Gets:
        a few small Gets are far cheaper for systemd than GetAll of hundreds of properties."""
        calls = [
            (SYSTEMD, path, PROPERTIES, "Get", "ss", [interface, name]) for path in paths for name in names
        ]
        replies = iter(self.conn.call_many(calls))
        out: list[dict[str, Any] | None] = []
        for _ in paths:
            values: dict[str, Any] | None = {}
            for name in names:
                reply = next(replies)
                if isinstance(reply, NotFound):
                    values = None
                elif isinstance(reply, Exception):
                    raise reply
                elif values is not None:
                    values[name] = from_dbus(reply[0])
            out.append(values)
        return out

    def unit_properties(self, name: str, interfaces: Sequence[str] = (UNIT, SERVICE)) -> dict[str, Any]:
        path = unit_object_path(name)
        merged: dict[str, Any] = {}
        for interface in interfaces:
            merged.update(self.properties(path, interface))
        return merged

    def unit_state(self, name: str, path: str | None = None) -> UnitState:
        """The live state of a loaded unit; NotFound when systemd has not loaded it (GetUnit first)."""
        path = path or self.get_unit(name)
        props: dict[str, Any] = {}
        for interface in (UNIT, SERVICE) if name.endswith(".service") else (UNIT,):
            props.update(self.properties(path, interface))
        return UnitState.from_properties(name, props)

    def list_units(self, patterns: Sequence[str], states: Sequence[str] = ()) -> list[UnitListEntry]:
        rows = self._manager("ListUnitsByPatterns", "asas", [list(states), list(patterns)])
        return [UnitListEntry(r[0], r[1], r[2], r[3], r[4], r[6]) for r in rows or []]
