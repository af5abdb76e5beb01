"""The blocking front of the systemd clients, for the CLI and the plan handlers (synchronous).

One bus connection per `Systemd` object, opened on first use, so commands that never reach
systemd (bad input, check of a spec) never pay for it. By default the connection is berth's own
(`berth.systemd.native`, no asyncio: a short-lived CLI process starts about 90 ms sooner without
asyncio and a D-Bus library); `BERTH_DBUS_BACKEND=dbus-fast|dbus-next` (or `backend=`) runs the
asyncio `SystemdClient` over that library on a private event loop instead. Both give the same
results and raise the same errors.
"""

from __future__ import annotations

import os
import time
from collections.abc import Coroutine, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from berth.systemd.jobs import DEFAULT_JOB_TIMEOUT
from berth.systemd.properties import Property
from berth.systemd.status import UnitListEntry, UnitState

if TYPE_CHECKING:
    import asyncio

    from berth.systemd.client import SystemdClient
    from berth.systemd.native import NativeClient

T = TypeVar("T")
UNWATCHED_POLL = 0.02  # seconds between looks at a unit, for backends that do not watch units


class _AsyncFront:
    """SystemdClient (asyncio, over dbus-fast or dbus-next) run to completion call by call."""

    def __init__(self, backend: str | None, job_timeout: float) -> None:
        import asyncio

        from berth.systemd.bus import load_backend
        from berth.systemd.client import SystemdClient

        self._loop: asyncio.AbstractEventLoop | None = asyncio.new_event_loop()
        try:
            lib = load_backend(backend)
            self.client: SystemdClient = self._run(SystemdClient.connect(lib, job_timeout))
        except BaseException:
            self._loop.close()
            raise
        self.backend_name = self.client.backend_name

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None, "closed"
        return self._loop.run_until_complete(coro)

    def close(self) -> None:
        if self._loop is not None:
            try:
                self._run(self.client.close())
            finally:
                self._loop.close()
                self._loop = None

    def watch_unit(self, name: str) -> None:
        pass

    def wait_until_stopped(self, name: str, timeout: float) -> bool:
        time.sleep(min(timeout, UNWATCHED_POLL))
        return False

    def __getattr__(self, method: str) -> Any:
        fn = getattr(self.client, method)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._run(fn(*args, **kwargs))

        return call


class Systemd:
    """`with Systemd() as sd: sd.start_transient(...)`: each method blocks until done."""

    def __init__(self, backend: str | None = None, job_timeout: float = DEFAULT_JOB_TIMEOUT) -> None:
        self._backend_name = backend
        self._job_timeout = job_timeout
        self._client: NativeClient | _AsyncFront | None = None

    def __enter__(self) -> Systemd:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def client(self) -> NativeClient | _AsyncFront:
        if self._client is None:
            from berth.systemd.wire import BACKEND_ENV, NATIVE, parse_address, system_bus_address

            requested = self._backend_name or os.environ.get(BACKEND_ENV) or NATIVE
            if requested == NATIVE and parse_address(system_bus_address()) is not None:
                from berth.systemd.native import NativeClient

                self._client = NativeClient.connect(self._job_timeout)
            else:  # a library was asked for, or the bus is not on a unix socket
                self._client = _AsyncFront(None if requested == NATIVE else requested, self._job_timeout)
        return self._client

    @property
    def backend_name(self) -> str:
        return self.client.backend_name

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()

    def start_transient(self, name: str, properties: Iterable[Property], timeout: float | None = None) -> str:
        return str(self.client.start_transient(name, properties, timeout))

    def stop(self, name: str, timeout: float | None = None) -> str:
        return str(self.client.stop(name, timeout))

    def stop_within(self, name: str, grace: float, timeout: float | None = None) -> str:
        return str(self.client.stop_within(name, grace, timeout))

    def kill(self, name: str, signal: int, whom: str = "all") -> None:
        self.client.kill(name, signal, whom)

    def reset_failed(self, name: str) -> None:
        self.client.reset_failed(name)

    def set_unit_properties(self, name: str, properties: Iterable[Property], runtime: bool = True) -> None:
        self.client.set_unit_properties(name, properties, runtime)

    def reload(self) -> None:
        self.client.reload()

    def version(self) -> str:
        return str(self.client.version())

    def unit_state(self, name: str, path: str | None = None) -> UnitState:
        state: UnitState = self.client.unit_state(name, path)
        return state

    def active_state(self, name: str) -> str:
        """The unit's ActiveState alone; "inactive" when systemd has not loaded it."""
        return str(self.client.active_state(name))

    def unit_properties(self, name: str, interfaces: Sequence[str]) -> dict[str, Any]:
        props: dict[str, Any] = self.client.unit_properties(name, interfaces)
        return props

    def list_units(self, patterns: Sequence[str], states: Sequence[str] = ()) -> list[UnitListEntry]:
        units: list[UnitListEntry] = self.client.list_units(patterns, states)
        return units

    def property_values(
        self, paths: Sequence[str], interface: str, names: Sequence[str]
    ) -> list[dict[str, Any] | None]:
        """Properties `names` of `interface` at each of the object `paths` (from a listing; None:
        the object is gone), in one batch: pipelined, not one round trip per property."""
        values: list[dict[str, Any] | None] = self.client.property_values(paths, interface, names)
        return values

    def watch_unit(self, name: str) -> None:
        """Follow unit `name` from now on, for `wait_until_stopped`."""
        self.client.watch_unit(name)

    def wait_until_stopped(self, name: str, timeout: float) -> bool:
        """Block until systemd signals that watched unit `name` stopped (inactive, failed or
        removed: True) or `timeout` s pass (False). The library backends do not follow signals
        here: they wait a short poll interval and return False. Look at the unit either way."""
        return bool(self.client.wait_until_stopped(name, timeout))
