"""A blocking front of SystemdClient for the CLI and the plan handlers (which are synchronous).

One event loop and one bus connection per `Systemd` object, opened on first use, so commands
that never reach systemd (bad input, check of a spec) never pay for importing a D-Bus library.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from berth.systemd.bus import load_backend
from berth.systemd.client import DEFAULT_JOB_TIMEOUT, SystemdClient
from berth.systemd.properties import Property
from berth.systemd.status import UnitListEntry, UnitState

T = TypeVar("T")


class Systemd:
    """`with Systemd() as sd: sd.start_transient(...)`: each method blocks until done."""

    def __init__(self, backend: str | None = None, job_timeout: float = DEFAULT_JOB_TIMEOUT) -> None:
        self._backend_name = backend
        self._job_timeout = job_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: SystemdClient | None = None

    def __enter__(self) -> Systemd:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    @property
    def client(self) -> SystemdClient:
        if self._client is None:
            backend = load_backend(self._backend_name)
            self._client = self._run(SystemdClient.connect(backend, self._job_timeout))
        return self._client

    @property
    def backend_name(self) -> str:
        return self.client.backend_name

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            self._run(client.close())
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    def start_transient(self, name: str, properties: Iterable[Property], timeout: float | None = None) -> str:
        return self._run(self.client.start_transient(name, properties, timeout))

    def stop(self, name: str, timeout: float | None = None) -> str:
        return self._run(self.client.stop(name, timeout))

    def stop_within(self, name: str, grace: float, timeout: float | None = None) -> str:
        return self._run(self.client.stop_within(name, grace, timeout))

    def kill(self, name: str, signal: int, whom: str = "all") -> None:
        self._run(self.client.kill(name, signal, whom))

    def reset_failed(self, name: str) -> None:
        self._run(self.client.reset_failed(name))

    def set_unit_properties(self, name: str, properties: Iterable[Property], runtime: bool = True) -> None:
        self._run(self.client.set_unit_properties(name, properties, runtime))

    def reload(self) -> None:
        self._run(self.client.reload())

    def version(self) -> str:
        return self._run(self.client.version())

    def unit_state(self, name: str, path: str | None = None) -> UnitState:
        return self._run(self.client.unit_state(name, path))

    def unit_properties(self, name: str, interfaces: Sequence[str]) -> dict[str, Any]:
        return self._run(self.client.unit_properties(name, interfaces))

    def list_units(self, patterns: Sequence[str], states: Sequence[str] = ()) -> list[UnitListEntry]:
        return self._run(self.client.list_units(patterns, states))
