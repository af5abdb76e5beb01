"""SystemdClient's job handling with a scripted bus: subscribe first, wait for JobRemoved, time out.

Real systemd is exercised by tests/integration/test_systemd_client.py; these pin the ordering
rules that a fast real systemd rarely shows: a JobRemoved that overtakes the method reply, a job
that never finishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from berth.errors import JobFailed, NotFound, Timeout
from berth.systemd import client as client_mod
from berth.systemd import journal
from berth.systemd.bus import Signal
from berth.systemd.client import MANAGER, SystemdClient
from berth.systemd.properties import Property

JOB = "/org/freedesktop/systemd1/job/42"


class ScriptedBus:
    """Answers systemd calls from a script and emits JobRemoved when told to."""

    def __init__(self, job_result: str | None, signal_before_reply: bool = False) -> None:
        self.job_result = job_result
        self.signal_before_reply = signal_before_reply
        self.calls: list[str] = []
        self.handlers: list[Callable[[Signal], None]] = []

    def variant(self, signature: str, value: Any) -> tuple[str, Any]:
        return (signature, value)

    def add_signal_handler(self, callback: Callable[[Signal], None]) -> None:
        self.handlers.append(callback)

    async def add_match(self, rule: str) -> None:
        self.calls.append(f"AddMatch {rule}")

    def _job_removed(self, unit: str) -> None:
        for handler in self.handlers:
            handler(
                Signal(
                    "x", "/org/freedesktop/systemd1", MANAGER, "JobRemoved", [42, JOB, unit, self.job_result]
                )
            )

    async def call(
        self,
        destination: str,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: Sequence[Any] = (),
        unix_fds: Sequence[int] = (),
    ) -> list[Any]:
        self.calls.append(member)
        if member in ("StartTransientUnit", "StopUnit"):
            if self.job_result is not None:
                loop = asyncio.get_running_loop()
                if self.signal_before_reply:
                    self._job_removed(body[0])
                else:
                    loop.call_soon(self._job_removed, body[0])
            return [JOB]
        if member == "GetUnit":
            raise NotFound("Unit x not loaded.")
        return [None]


def start(bus: ScriptedBus, timeout: float | None = None) -> str:
    client = SystemdClient(bus, job_timeout=5)  # type: ignore[arg-type]
    return asyncio.run(client.start_transient("x.service", [Property("Type", "s", "exec")], timeout))


@pytest.mark.parametrize("before_reply", [False, True])
def test_done_job_returns_after_subscribing_first(before_reply: bool) -> None:
    bus = ScriptedBus("done", signal_before_reply=before_reply)
    assert start(bus) == JOB
    assert bus.calls[:3] == [f"AddMatch {client_mod.JOB_REMOVED_MATCH}", "Subscribe", "StartTransientUnit"]


def test_job_that_never_finishes_times_out() -> None:
    with pytest.raises(Timeout) as err:
        start(ScriptedBus(None), timeout=0.05)
    assert err.value.details == {"unit": "x.service", "job": JOB}
    assert "did not finish within 0.05s" in err.value.message


def test_failed_job_is_job_failed_with_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [journal.Entry("x.service: Failed at step EXEC spawning /nope", None)]
    monkeypatch.setattr(journal, "tail", lambda unit, lines, since: entries)
    with pytest.raises(JobFailed) as err:
        start(ScriptedBus("failed"))
    details = err.value.details
    assert details["job_result"] == "failed"
    assert details["journal"] == [entries[0].message]
    assert details["load_state"] == "not-loaded"  # the unit vanished before we looked
    assert err.value.message.endswith(": x.service: Failed at step EXEC spawning /nope")


def test_subscribes_once_per_connection() -> None:
    bus = ScriptedBus("done")
    client = SystemdClient(bus, job_timeout=5)  # type: ignore[arg-type]

    async def twice() -> None:
        await client.start_transient("x.service", [])
        await client.stop("x.service")

    asyncio.run(twice())
    assert bus.calls.count("Subscribe") == 1
    assert bus.calls[-1] == "StopUnit"


class StubbornBus(ScriptedBus):
    """A unit whose process ignores its stop signal: the stop job ends only after a SIGKILL."""

    def __init__(self, kill_error: str | None = None) -> None:
        super().__init__("done")
        self.kill_error = kill_error
        self.kills: list[list[Any]] = []

    async def call(
        self,
        destination: str,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: Sequence[Any] = (),
        unix_fds: Sequence[int] = (),
    ) -> list[Any]:
        if member == "StopUnit":
            self.calls.append(member)
            return [JOB]  # queued; nothing ends it but the kill
        if member == "KillUnit":
            self.calls.append(member)
            self.kills.append(list(body))
            if self.kill_error:
                from berth.systemd.error_map import map_dbus_error

                raise map_dbus_error(self.kill_error, "No main process to kill", member)
            asyncio.get_running_loop().call_soon(self._job_removed, body[0])
            return [None]
        return await super().call(destination, path, interface, member, signature, body, unix_fds)


def stop_within(bus: ScriptedBus, grace: float) -> str:
    client = SystemdClient(bus, job_timeout=5)  # type: ignore[arg-type]
    return asyncio.run(client.stop_within("x.service", grace))


def test_stop_within_zero_queues_the_stop_then_kills_the_main_process_at_once() -> None:
    bus = StubbornBus()
    assert stop_within(bus, 0) == JOB
    # The stop job first (no restart while it is pending), then SIGKILL to the main process.
    assert bus.calls[-2:] == ["StopUnit", "KillUnit"]
    assert bus.kills == [["x.service", "main", 9]]


def test_stop_within_a_grace_kills_only_once_it_has_passed() -> None:
    bus = StubbornBus()
    assert stop_within(bus, 0.05) == JOB
    assert bus.kills == [["x.service", "main", 9]]


def test_stop_within_a_grace_does_not_kill_a_unit_that_stops_in_time() -> None:
    bus = ScriptedBus("done")  # the stop signal was enough
    assert stop_within(bus, 5) == JOB
    assert "KillUnit" not in bus.calls


def test_stop_within_tolerates_a_main_process_that_is_gone_already() -> None:
    bus = StubbornBus(kill_error=client_mod.NO_SUCH_PROCESS)
    with pytest.raises(Timeout):  # nothing ends this scripted job: the kill error itself was ignored
        asyncio.run(SystemdClient(bus, job_timeout=0.05).stop_within("x.service", 0))  # type: ignore[arg-type]
    assert bus.calls[-2:] == ["StopUnit", "KillUnit"]
