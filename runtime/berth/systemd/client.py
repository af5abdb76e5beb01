"""An asyncio client for systemd's D-Bus API: transient units, jobs, properties.

A job path in a method reply is not success: systemd has only queued the job. Every method that
creates a job therefore subscribes to `JobRemoved` *before* the call (so a fast job cannot finish
unseen), then waits for the signal and raises `JobFailed` unless its result is `done`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any

from berth.errors import DBusCallFailed, JobFailed, NotFound, Timeout
from berth.systemd import journal
from berth.systemd.bus import Backend, Bus, Signal, connect
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
    SLICE,
    SYSTEMD,
    UNIT,
    job_failed,
    job_removed,
    job_timeout_error,
    transient_properties,
)
from berth.systemd.names import unit_object_path
from berth.systemd.properties import Property, from_dbus
from berth.systemd.status import UnitListEntry, UnitState

__all__ = [
    "DEFAULT_JOB_TIMEOUT",
    "JOB_REMOVED_MATCH",
    "MANAGER",
    "MANAGER_PATH",
    "PROPERTIES",
    "SERVICE",
    "SLICE",
    "SYSTEMD",
    "UNIT",
    "SystemdClient",
]


class SystemdClient:
    """One connection to systemd; create with `await SystemdClient.connect()`."""

    def __init__(self, bus: Bus, job_timeout: float = DEFAULT_JOB_TIMEOUT) -> None:
        self.bus = bus
        self.job_timeout = job_timeout
        self._subscribed = False
        self._waiters: dict[str, asyncio.Future[str]] = {}
        self._finished: dict[str, str] = {}

    @classmethod
    async def connect(
        cls, backend: Backend | None = None, job_timeout: float = DEFAULT_JOB_TIMEOUT
    ) -> SystemdClient:
        return cls(await connect(backend), job_timeout)

    @property
    def backend_name(self) -> str:
        return self.bus.backend.name

    async def close(self) -> None:
        await self.bus.close()

    async def _manager(
        self, member: str, signature: str = "", body: Sequence[Any] = (), unix_fds: Sequence[int] = ()
    ) -> Any:
        reply = await self.bus.call(
            SYSTEMD, MANAGER_PATH, MANAGER, member, signature, body, unix_fds=unix_fds
        )
        return reply[0] if reply else None

    # -- jobs -------------------------------------------------------------------------------

    def _on_signal(self, sig: Signal) -> None:
        removed = job_removed(sig.member, sig.interface, sig.body)
        if removed is None:
            return
        job, result = removed
        waiter = self._waiters.get(job)
        if waiter is not None and not waiter.done():
            waiter.set_result(result)
            return
        self._finished[job] = result  # the reply to our call may not have arrived yet
        while len(self._finished) > FINISHED_KEPT:
            del self._finished[next(iter(self._finished))]

    async def _subscribe(self) -> None:
        if self._subscribed:
            return
        self.bus.add_signal_handler(self._on_signal)
        await self.bus.add_match(JOB_REMOVED_MATCH)
        await self._manager("Subscribe")
        self._subscribed = True

    async def _wait_job(self, job: str, unit: str, verb: str, timeout: float | None) -> str:
        timeout = self.job_timeout if timeout is None else timeout
        if job in self._finished:
            return self._finished.pop(job)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters[job] = future
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise job_timeout_error(verb, unit, job, timeout) from None
        finally:
            self._waiters.pop(job, None)

    async def _job_failed(self, unit: str, verb: str, job: str, result: str, since: float) -> JobFailed:
        """A JobFailed that says what state the job left the unit in, and its last words."""
        try:
            state = await self.unit_state(unit)
        except NotFound:
            state = UnitState.not_loaded(unit)
        entries = await asyncio.to_thread(journal.tail, unit, 10, since)
        return job_failed(unit, verb, job, result, state, entries)

    async def _run_job(
        self,
        unit: str,
        verb: str,
        member: str,
        signature: str,
        body: Sequence[Any],
        timeout: float | None,
        unix_fds: Sequence[int] = (),
    ) -> str:
        await self._subscribe()
        since = time.time()
        job = await self._manager(member, signature, body, unix_fds)
        result = await self._wait_job(job, unit, verb, timeout)
        if result != "done":
            raise await self._job_failed(unit, verb, job, result, since)
        return str(job)

    # -- unit lifecycle ---------------------------------------------------------------------

    async def start_transient(
        self, name: str, properties: Iterable[Property], timeout: float | None = None
    ) -> str:
        """Start transient unit `name` (mode "fail"); return the finished job's path.

        A property of type `h` carries a file descriptor of this process (such as
        StandardOutputFileDescriptor); it is sent with the message and systemd hands the unit a
        copy of it.
        """
        props, fds = transient_properties(properties, self.bus.variant)
        return await self._run_job(
            name,
            "start",
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            [name, "fail", props, []],
            timeout,
            unix_fds=fds,
        )

    async def stop(self, name: str, timeout: float | None = None) -> str:
        return await self._run_job(name, "stop", "StopUnit", "ss", [name, "replace"], timeout)

    async def stop_within(self, name: str, grace: float, timeout: float | None = None) -> str:
        """Stop `name`, sending SIGKILL to its main process if it still runs after `grace` seconds.

        The stop job is queued first: while it is pending, systemd neither restarts the unit
        (Restart=) nor waits out its TimeoutStopSec once the process is gone. With grace 0 the
        SIGKILL follows at once, whatever the process does with its stop signal; under
        KillMode=mixed systemd then kills the rest of the unit's processes itself.
        """
        await self._subscribe()
        since = time.time()
        job = await self._manager("StopUnit", "ss", [name, "replace"])
        result = None
        if grace > 0:
            try:
                result = await self._wait_job(job, name, "stop", grace)
            except Timeout:
                pass
        if result is None:
            try:
                await self.kill(name, SIGKILL, "main")
            except NotFound:
                pass  # unloaded meanwhile: it has stopped
            except DBusCallFailed as exc:
                if exc.details.get("dbus_error") != NO_SUCH_PROCESS:
                    raise  # else its main process has exited already
            result = await self._wait_job(job, name, "stop", timeout)
        if result != "done":
            raise await self._job_failed(name, "stop", job, result, since)
        return str(job)

    async def kill(self, name: str, signal: int, whom: str = "all") -> None:
        await self._manager("KillUnit", "ssi", [name, whom, signal])

    async def reset_failed(self, name: str) -> None:
        await self._manager("ResetFailedUnit", "s", [name])

    async def set_unit_properties(
        self, name: str, properties: Iterable[Property], runtime: bool = True
    ) -> None:
        """Change properties of a live unit (runtime=True: not persisted across reboot)."""
        props = [[p.name, self.bus.variant(p.signature, p.value)] for p in properties]
        await self._manager("SetUnitProperties", "sba(sv)", [name, runtime, props])

    async def reload(self) -> None:
        """Reload unit files (daemon-reload); returns once systemd has finished."""
        await self._manager("Reload")

    # -- reading ----------------------------------------------------------------------------

    async def version(self) -> str:
        """systemd's version; also proves that systemd answers on this bus."""
        reply = await self.bus.call(SYSTEMD, MANAGER_PATH, PROPERTIES, "Get", "ss", [MANAGER, "Version"])
        return str(from_dbus(reply[0]))

    async def get_unit(self, name: str) -> str:
        """The object path of a loaded unit; NotFound when systemd has not loaded it."""
        return str(await self._manager("GetUnit", "s", [name]))

    async def active_state(self, name: str) -> str:
        """The unit's ActiveState alone (one property: cheap for systemd); "inactive" if not loaded."""
        try:
            path = await self.get_unit(name)
        except NotFound:
            return "inactive"
        reply = await self.bus.call(SYSTEMD, path, PROPERTIES, "Get", "ss", [UNIT, "ActiveState"])
        return str(from_dbus(reply[0]))

    async def properties(self, path: str, interface: str) -> dict[str, Any]:
        reply = await self.bus.call(SYSTEMD, path, PROPERTIES, "GetAll", "s", [interface])
        return {k: from_dbus(v) for k, v in reply[0].items()}

    async def property_values(
        self, paths: Sequence[str], interface: str, names: Sequence[str]
    ) -> list[dict[str, Any] | None]:
        """Properties `names` of the objects `paths` (None: gone): the Gets of a chunk in flight at
        once, no more than the system bus lets one connection have pending (see wire.PIPELINE_CHUNK)."""
        from berth.systemd.wire import PIPELINE_CHUNK

        async def one(path: str) -> dict[str, Any] | None:
            try:
                replies = await asyncio.gather(
                    *(self.bus.call(SYSTEMD, path, PROPERTIES, "Get", "ss", [interface, n]) for n in names)
                )
            except NotFound:
                return None
            return {n: from_dbus(r[0]) for n, r in zip(names, replies, strict=True)}

        step = max(1, PIPELINE_CHUNK // max(1, len(names)))
        out: list[dict[str, Any] | None] = []
        for first in range(0, len(paths), step):
            out += await asyncio.gather(*(one(p) for p in paths[first : first + step]))
        return out

    async def unit_properties(self, name: str, interfaces: Sequence[str] = (UNIT, SERVICE)) -> dict[str, Any]:
        """GetAll on `interfaces` of `name` (by its computed object path: no GetUnit needed)."""
        path = unit_object_path(name)
        merged: dict[str, Any] = {}
        for interface in interfaces:
            merged.update(await self.properties(path, interface))
        return merged

    async def unit_state(self, name: str, path: str | None = None) -> UnitState:
        """The live state of a loaded unit; NotFound when systemd has not loaded it.

        GetUnit first (unless `path` came from a listing): GetAll on the path of an unknown unit
        would load a stub of it.
        """
        path = path or await self.get_unit(name)
        props: dict[str, Any] = {}
        for interface in (UNIT, SERVICE) if name.endswith(".service") else (UNIT,):
            props.update(await self.properties(path, interface))
        return UnitState.from_properties(name, props)

    async def list_units(self, patterns: Sequence[str], states: Sequence[str] = ()) -> list[UnitListEntry]:
        """Loaded units whose names match any of the glob `patterns` (e.g. "berth-*")."""
        rows = await self._manager("ListUnitsByPatterns", "asas", [list(states), list(patterns)])
        return [UnitListEntry(r[0], r[1], r[2], r[3], r[4], r[6]) for r in rows or []]
