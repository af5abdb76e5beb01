"""NativeClient (the blocking client over berth's own D-Bus connection) keeps the job rules of
SystemdClient: subscribe before the call, wait for JobRemoved, time out, kill after the grace;
and it follows a watched unit's signals until it stops."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from berth.errors import JobFailed, NotFound, Timeout
from berth.systemd import journal
from berth.systemd.jobs import JOB_REMOVED_MATCH, MANAGER, NO_SUCH_PROCESS, UNIT, UNIT_REMOVED_MATCH
from berth.systemd.names import unit_object_path
from berth.systemd.native import NativeClient
from berth.systemd.properties import Property
from berth.systemd.wire import SIGNAL, Message, Variant

JOB = "/org/freedesktop/systemd1/job/42"


def signal(path: str, interface: str, member: str, body: list[Any]) -> Message:
    return Message(SIGNAL, 0, 0, {1: path, 2: interface, 3: member}, body)


class ScriptedConn:
    """Answers systemd calls from a script; signals queue up and arrive while the client waits."""

    def __init__(self, job_result: str | None, signal_before_reply: bool = False) -> None:
        self.job_result = job_result
        self.signal_before_reply = signal_before_reply
        self.calls: list[str] = []
        self.handlers: list[Callable[[Message], None]] = []
        self.queued: list[Message] = []
        self.kill_error: str | None = None
        self.stubborn = False

    def add_handler(self, handler: Callable[[Message], None]) -> None:
        self.handlers.append(handler)

    def _deliver(self, msg: Message) -> None:
        for handler in self.handlers:
            handler(msg)

    def job_removed(self, unit: str) -> Message:
        return signal("/org/freedesktop/systemd1", MANAGER, "JobRemoved", [42, JOB, unit, self.job_result])

    def call(
        self,
        destination: str,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: Sequence[Any] = (),
        timeout: float = 30,
        unix_fds: Sequence[int] = (),
    ) -> list[Any]:
        self.calls.append(f"AddMatch {body[0]}" if member == "AddMatch" else member)
        if member in ("StartTransientUnit", "StopUnit"):
            if member == "StopUnit" and self.stubborn:
                return [JOB]
            if self.job_result is not None:
                if self.signal_before_reply:
                    self._deliver(self.job_removed(body[0]))
                else:
                    self.queued.append(self.job_removed(body[0]))
            return [JOB]
        if member == "KillUnit":
            if self.kill_error:
                from berth.systemd.error_map import map_dbus_error

                raise map_dbus_error(self.kill_error, "No main process to kill", member)
            self.queued.append(self.job_removed(body[0]))
            return [None]
        if member == "GetUnit":
            raise NotFound("Unit x not loaded.")
        return [None]

    def wait_signal(self, timeout: float) -> bool:
        if not self.queued:
            time.sleep(timeout)
            return False
        self._deliver(self.queued.pop(0))
        return True


def client(conn: ScriptedConn, job_timeout: float = 5) -> NativeClient:
    return NativeClient(conn, job_timeout=job_timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize("before_reply", [False, True])
def test_done_job_returns_after_subscribing_first(before_reply: bool) -> None:
    conn = ScriptedConn("done", signal_before_reply=before_reply)
    assert client(conn).start_transient("x.service", [Property("Type", "s", "exec")]) == JOB
    assert conn.calls[:3] == [f"AddMatch {JOB_REMOVED_MATCH}", "Subscribe", "StartTransientUnit"]


def test_job_that_never_finishes_times_out() -> None:
    with pytest.raises(Timeout) as err:
        client(ScriptedConn(None)).start_transient("x.service", [], timeout=0.05)
    assert err.value.details == {"unit": "x.service", "job": JOB}
    assert "did not finish within 0.05s" in err.value.message


def test_failed_job_is_job_failed_with_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [journal.Entry("x.service: Failed at step EXEC spawning /nope", None)]
    monkeypatch.setattr(journal, "tail", lambda unit, lines, since: entries)
    with pytest.raises(JobFailed) as err:
        client(ScriptedConn("failed")).start_transient("x.service", [])
    assert err.value.details["job_result"] == "failed"
    assert err.value.details["journal"] == [entries[0].message]
    assert err.value.details["load_state"] == "not-loaded"
    assert err.value.message.endswith(": x.service: Failed at step EXEC spawning /nope")


def test_subscribes_once_per_connection() -> None:
    conn = ScriptedConn("done")
    c = client(conn)
    c.start_transient("x.service", [])
    c.stop("x.service")
    assert conn.calls.count("Subscribe") == 1
    assert conn.calls[-1] == "StopUnit"


def test_stop_within_zero_kills_the_main_process_at_once() -> None:
    conn = ScriptedConn("done")
    conn.stubborn = True
    assert client(conn).stop_within("x.service", 0) == JOB
    assert conn.calls[-2:] == ["StopUnit", "KillUnit"]


def test_stop_within_a_grace_kills_only_once_it_has_passed() -> None:
    conn = ScriptedConn("done")
    conn.stubborn = True
    start = time.monotonic()
    assert client(conn).stop_within("x.service", 0.05) == JOB
    assert time.monotonic() - start >= 0.05
    assert conn.calls[-1] == "KillUnit"


def test_stop_within_tolerates_a_main_process_that_is_gone_already() -> None:
    conn = ScriptedConn("done")
    conn.stubborn = True
    conn.kill_error = NO_SUCH_PROCESS
    with pytest.raises(Timeout):  # nothing ends this scripted job: the kill error itself was ignored
        client(conn, job_timeout=0.05).stop_within("x.service", 0)
    assert conn.calls[-2:] == ["StopUnit", "KillUnit"]


def test_a_watched_unit_wakes_its_waiter_when_it_stops_or_goes() -> None:
    conn = ScriptedConn("done")
    c = client(conn)
    c.watch_unit("x.service")
    path = unit_object_path("x.service")
    assert conn.calls == [
        f"AddMatch {JOB_REMOVED_MATCH}",
        "Subscribe",
        f"AddMatch {UNIT_REMOVED_MATCH}",
        f"AddMatch type='signal',sender='org.freedesktop.systemd1',path='{path}',"
        "interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'",
    ]

    def changed(unit_path: str, interface: str, key: str, value: str) -> Message:
        props = {key: Variant("s", value)}
        return signal(
            unit_path, "org.freedesktop.DBus.Properties", "PropertiesChanged", [interface, props, []]
        )

    conn.queued = [
        changed(path, UNIT, "ActiveState", "deactivating"),
        changed(unit_object_path("y.service"), UNIT, "ActiveState", "inactive"),
        changed(path, "org.freedesktop.systemd1.Service", "Result", "success"),
    ]
    assert not c.wait_until_stopped("x.service", 0.05)  # none of these says that x stopped
    conn.queued = [changed(path, UNIT, "ActiveState", "failed")]
    assert c.wait_until_stopped("x.service", 5)
    conn.queued = [signal("/org/freedesktop/systemd1", MANAGER, "UnitRemoved", ["x.service", path])]
    assert c.wait_until_stopped("x.service", 5)
    c.watch_unit("x.service")  # again: no new matches
    assert conn.calls.count(f"AddMatch {UNIT_REMOVED_MATCH}") == 1


def test_active_state_of_an_unloaded_unit_is_inactive() -> None:
    assert client(ScriptedConn("done")).active_state("x.service") == "inactive"
