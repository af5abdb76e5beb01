"""D-Bus error mapping, backend choice, bus addresses, journal reading: the pure parts."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from berth import errors
from berth.systemd import journal
from berth.systemd.bus import load_backend, socket_path
from berth.systemd.error_map import map_dbus_error
from berth.systemd.status import UnitState


@pytest.mark.parametrize(
    "name, kind",
    [
        ("org.freedesktop.DBus.Error.AccessDenied", errors.PermissionDenied),
        ("org.freedesktop.DBus.Error.InteractiveAuthorizationRequired", errors.PermissionDenied),
        ("org.freedesktop.systemd1.NoSuchUnit", errors.NotFound),
        ("org.freedesktop.systemd1.UnitExists", errors.Conflict),
        ("org.freedesktop.DBus.Error.ServiceUnknown", errors.SystemdUnavailable),
        ("org.freedesktop.DBus.Error.NameHasNoOwner", errors.SystemdUnavailable),
        ("org.freedesktop.DBus.Error.InvalidArgs", errors.DBusCallFailed),
        ("org.freedesktop.systemd1.LoadFailed", errors.DBusCallFailed),
    ],
)
def test_map_dbus_error(name: str, kind: type[errors.BerthError]) -> None:
    err = map_dbus_error(name, "some text", "StartTransientUnit")
    assert type(err) is kind
    assert err.details == {"dbus_error": name, "method": "StartTransientUnit"}
    if kind in (errors.DBusCallFailed, errors.PermissionDenied, errors.SystemdUnavailable):
        assert name in err.message


def test_systemd_not_running_message() -> None:
    err = map_dbus_error("org.freedesktop.DBus.Error.ServiceUnknown", "", "Get")
    assert err.message.startswith("systemd is not running")


@pytest.mark.parametrize("backend", ["dbus-fast", "dbus-next"])
def test_forced_backend(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_DBUS_BACKEND", backend)
    loaded = load_backend()
    assert loaded.name == backend
    assert loaded.Message.__module__.startswith(backend.replace("-", "_"))


def test_default_backend_prefers_dbus_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BERTH_DBUS_BACKEND", raising=False)
    assert load_backend().name == "dbus-fast"


def test_unknown_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_DBUS_BACKEND", "dbus-python")
    with pytest.raises(errors.InvalidInput, match="dbus-fast, dbus-next"):
        load_backend()


def test_missing_forced_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dbus_next", None)  # makes `import dbus_next` fail
    with pytest.raises(errors.Unsupported, match="dbus-next is not installed"):
        load_backend("dbus-next")


@pytest.mark.parametrize(
    "address, path",
    [
        ("unix:path=/run/dbus/system_bus_socket", "/run/dbus/system_bus_socket"),
        ("unix:path=/tmp/b.sock,guid=abc", "/tmp/b.sock"),
        ("unix:abstract=/tmp/x", "unix:abstract=/tmp/x"),
        ("unix:path=/a;unix:path=/b", "/a"),
    ],
)
def test_socket_path(address: str, path: str) -> None:
    assert socket_path(address) == path


def _journal_output(*entries: dict[str, Any]) -> str:
    return "".join(json.dumps(e) + "\n" for e in entries) + "not json\n"


def test_journal_tail_and_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    out = _journal_output(
        {"MESSAGE": "Starting x...", "MESSAGE_ID": "7d4958e842da4a758f6c1cdc7b36dcc5"},
        {
            "MESSAGE": "x.service: Failed at step EXEC spawning /nope",
            "MESSAGE_ID": "641257651c1b4ec9a8624d7a40a9e1e7",
        },
        {"MESSAGE": list(b"bytes \xff"), "MESSAGE_ID": None},
        {"MESSAGE": "x.service: Main process exited", "MESSAGE_ID": "98e322203f7a4ed290d09fe03c09fe15"},
        {"MESSAGE": "Failed to start x.", "MESSAGE_ID": "be02cf6855d2428ba40df7e9d022f03d"},
    )

    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, out, "")

    monkeypatch.setattr(subprocess, "run", run)
    entries = journal.tail("x.service", 10, since=1000.7)
    assert calls == [
        [
            "journalctl",
            "-n",
            "10",
            "-o",
            "json",
            "--no-pager",
            "_SYSTEMD_UNIT=x.service",
            "+",
            "UNIT=x.service",
            "--since=@1000",
        ]
    ]
    assert [e.message for e in entries][1:3] == [
        "x.service: Failed at step EXEC spawning /nope",
        "bytes \ufffd",
    ]
    assert journal.cause(entries) == "bytes \ufffd"
    assert journal.cause(entries[:2] + entries[3:]) == "x.service: Failed at step EXEC spawning /nope"
    assert journal.cause([entries[0]]) == "Starting x..."
    assert journal.cause([]) is None


def test_journal_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError("journalctl")

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(journal, "RETRY_DELAY", 0)
    assert journal.tail("x.service") == []


def test_unit_state_from_properties() -> None:
    state = UnitState.from_properties(
        "x.service",
        {
            "LoadState": "loaded",
            "ActiveState": "failed",
            "SubState": "failed",
            "Result": "exit-code",
            "MainPID": 0,
            "ExecMainStatus": 203,
            "ExecMainCode": 1,
            "ControlGroup": "",
            "InvocationID": bytes(range(16)),
            "Environment": ["A=1", "BERTH_SPEC_HASH=abc"],
        },
    )
    assert state.to_json() == {
        "load_state": "loaded",
        "active_state": "failed",
        "sub_state": "failed",
        "result": "exit-code",
        "main_pid": 0,
        "exec_main_status": 203,
        "exec_main_code": "exited",
        "control_group": None,
        "invocation_id": bytes(range(16)).hex(),
    }
    assert state.env("BERTH_SPEC_HASH") == "abc"
    assert state.env("B") is None
    assert state.exists and not state.running
    assert not UnitState.not_loaded("x.service").exists


def test_journal_tail_waits_for_the_closing_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """journald may not have stored every line yet: poll until systemd's failure line is in."""
    early = _journal_output({"MESSAGE": "Starting x...", "MESSAGE_ID": "7d4958e842da4a758f6c1cdc7b36dcc5"})
    late = _journal_output(
        {"MESSAGE": "Starting x...", "MESSAGE_ID": "7d4958e842da4a758f6c1cdc7b36dcc5"},
        {"MESSAGE": "x.service: Failed at step EXEC", "MESSAGE_ID": "641257651c1b4ec9a8624d7a40a9e1e7"},
        {"MESSAGE": "Failed to start x.", "MESSAGE_ID": journal.UNIT_FAILED},
    )
    outputs = iter([early, early, late])

    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 0, next(outputs), "")

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(journal, "RETRY_DELAY", 0)
    assert journal.cause(journal.tail("x.service")) == "x.service: Failed at step EXEC"
