"""berth's own D-Bus wire format (berth.systemd.wire) against dbus-fast's, byte for byte, and a
native connection against a private dbus-daemon (auth, calls, errors, signals)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from berth import errors
from berth.systemd import wire
from berth.systemd.properties import from_dbus, to_dbus

dbus_fast = pytest.importorskip("dbus_fast")


def _fast(value: Any, signature: str) -> Any:
    """A value in dbus-fast's terms: wire.Variant -> dbus_fast.Variant, recursively."""
    if isinstance(value, wire.Variant):
        return dbus_fast.Variant(value.signature, _fast(value.value, value.signature))
    if isinstance(value, dict):
        return {k: _fast(v, "") for k, v in value.items()}
    if isinstance(value, list):
        return [_fast(v, "") for v in value]
    return value


BODIES: list[tuple[str, list[Any]]] = [
    ("", []),
    ("s", ["hello"]),
    ("ssi", ["x.service", "main", 9]),
    ("sb", ["unit", True]),
    ("ybnqiuxtd", [7, False, -2, 65000, -(2**31), 2**32 - 1, -(2**63), 2**64 - 1, 2.5]),
    ("og", ["/org/freedesktop/systemd1", "a(sv)"]),
    ("as", [["a", "bc", ""]]),
    ("ay", [b"\x00\x01\xff"]),
    ("aay", [[b"X=1", b"", b"LONGER=value"]]),
    ("a{sv}", [{"a": wire.Variant("u", 1), "b": wire.Variant("as", ["x"]), "c": wire.Variant("t", 5)}]),
    ("a{ss}", [{}]),
    ("(ii)a(sasb)", [[1, 2], [["/bin/sh", ["/bin/sh", "-c", "true"], False]]]),
    ("v", [wire.Variant("(sv)", ["k", wire.Variant("ay", b"ab")])]),
    ("asas", [[], ["berth-*"]]),
]


def _transient() -> tuple[str, list[Any]]:
    props = [
        to_dbus("ExecStart", [["/usr/bin/python3", "-S", "/x/main.py", "start", "/c.json"]]),
        to_dbus("ExecStopPost", [["/bin/sh", "/x/record-exit.sh", "/e.json"]]),
        to_dbus("Type", "notify"),
        to_dbus("Environment", ["A=1", "B=2"]),
        to_dbus("MemoryMax", 64 * 1024**2),
        to_dbus("CPUAffinity", [0, 3, 9]),
        to_dbus("DeviceAllow", [["/dev/null", "rwm"], ["char-pts", "rwm"]]),
        to_dbus("LogExtraFields", [b"BERTH_X=1"]),
        to_dbus("KillSignal", 15),
        to_dbus("LoadCredential", [["k", "/s"]]),
        to_dbus("SetCredential", [["id", "text"]]),
    ]
    body = ["x.service", "fail", [[p.name, wire.Variant(p.signature, p.value)] for p in props], []]
    return "ssa(sv)a(sa(sv))", body


@pytest.mark.parametrize("signature, body", [*BODIES, _transient()])
def test_method_call_bytes_are_dbus_fast_bytes(signature: str, body: list[Any]) -> None:
    fields = [
        (wire.PATH, "o", "/org/freedesktop/systemd1"),
        (wire.INTERFACE, "s", "org.freedesktop.systemd1.Manager"),
        (wire.MEMBER, "s", "Member"),
        (wire.DESTINATION, "s", "org.freedesktop.systemd1"),
    ]
    ours = wire.build_message(wire.METHOD_CALL, 77, fields, signature, body)
    theirs = dbus_fast.Message(
        destination="org.freedesktop.systemd1",
        path="/org/freedesktop/systemd1",
        interface="org.freedesktop.systemd1.Manager",
        member="Member",
        signature=signature,
        body=[_fast(v, "") for v in body],
        serial=77,
    )._marshall(False)
    assert ours == bytes(theirs)
    parsed = wire.parse_message(ours)
    assert wire.message_size(ours[:16]) == len(ours)
    assert (parsed.kind, parsed.serial, parsed.member, parsed.path) == (
        wire.METHOD_CALL, 77, "Member", "/org/freedesktop/systemd1",
    )  # fmt: skip
    assert from_dbus(parsed.body) == from_dbus(body)


def test_unix_fds_field_is_sent_with_the_call() -> None:
    fields = [(wire.PATH, "o", "/p"), (wire.MEMBER, "s", "M"), (wire.UNIX_FDS, "u", 2)]
    parsed = wire.parse_message(wire.build_message(wire.METHOD_CALL, 1, fields, "hh", [0, 1]))
    assert parsed.fields[wire.UNIX_FDS] == 2
    assert parsed.body == [0, 1]


@pytest.mark.parametrize("endian", ["<", ">"])
def test_replies_in_either_byte_order_are_read(endian: str) -> None:
    body = ["/org/freedesktop/systemd1/job/1", {"ActiveState": dbus_fast.Variant("s", "active")}]
    message = dbus_fast.Message(
        message_type=dbus_fast.MessageType.METHOD_RETURN,
        reply_serial=9,
        signature="oa{sv}",
        body=body,
        serial=3,
    )
    raw = bytes(message._marshall(False))
    if endian == ">":  # re-marshal big-endian by hand: our own writer can do that
        fields = [(wire.REPLY_SERIAL, "u", 9)]
        head = bytearray(b"B" + bytes([wire.METHOD_RETURN, 0, 1]) + bytes(8))
        writer = wire._Writer(head, ">")
        writer.write(
            "a(yv)", [(c, wire.Variant(s, v)) for c, s, v in fields] + [(8, wire.Variant("g", "oa{sv}"))]
        )
        writer.align(8)
        payload = wire._Writer(bytearray(), ">")
        payload.write("o", body[0])
        payload.write("a{sv}", {"ActiveState": wire.Variant("s", "active")})
        head[4:12] = len(payload.buf).to_bytes(4, "big") + (3).to_bytes(4, "big")
        raw = bytes(head) + bytes(payload.buf)
    parsed = wire.parse_message(raw)
    assert parsed.kind == wire.METHOD_RETURN and parsed.fields[wire.REPLY_SERIAL] == 9
    assert from_dbus(parsed.body) == ["/org/freedesktop/systemd1/job/1", {"ActiveState": "active"}]


@pytest.mark.parametrize("bad", ["a", "(s", "a{s}x", "z"])
def test_bad_signatures_are_refused(bad: str) -> None:
    with pytest.raises(wire.ProtocolError):
        wire.marshal_body(bad, [None])


@pytest.mark.parametrize(
    "address, target",
    [
        ("unix:path=/run/dbus/system_bus_socket", "/run/dbus/system_bus_socket"),
        ("unix:path=/tmp/a%20b,guid=1", "/tmp/a b"),
        ("unix:abstract=/tmp/x", "\0/tmp/x"),
        ("tcp:host=localhost,port=1;unix:path=/b", "/b"),
        ("tcp:host=localhost,port=1", None),
    ],
)
def test_parse_address(address: str, target: str | None) -> None:
    assert wire.parse_address(address) == target


# -- against a private dbus-daemon ---------------------------------------------------------------
DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")


def test_connection_calls_and_errors(bus: str) -> None:
    conn = wire.Connection.open(bus, "the test bus")
    try:
        assert conn.unix_fds
        names = conn.call(*DBUS, "ListNames")[0]
        assert "org.freedesktop.DBus" in names
        with pytest.raises(errors.SystemdUnavailable) as err:  # NameHasNoOwner: nobody is systemd here
            conn.call(*DBUS, "GetNameOwner", "s", ["org.freedesktop.systemd1"])
        assert err.value.details["dbus_error"] == "org.freedesktop.DBus.Error.NameHasNoOwner"
        r, w = os.pipe()
        try:  # a descriptor travels with the call (the bus refuses the method, not the message)
            with pytest.raises(errors.BerthError):
                conn.call(*DBUS, "NoSuchMethod", "h", [0], unix_fds=[w])
        finally:
            os.close(r)
            os.close(w)
    finally:
        conn.close()


def test_signals_reach_handlers_while_waiting(bus: str) -> None:
    listener = wire.Connection.open(bus, "the test bus")
    sender = wire.Connection.open(bus, "the test bus")
    try:
        got: list[wire.Message] = []
        listener.add_handler(got.append)
        listener.call(*DBUS, "AddMatch", "s", ["type='signal',interface='org.example.Test'"])
        while listener.wait_signal(0.05):  # NameAcquired (ours, after Hello) and nothing else
            pass
        assert [m.member for m in got] in ([], ["NameAcquired"])
        got.clear()
        signal = wire.build_message(
            wire.SIGNAL,
            sender._next_serial(),
            [(wire.PATH, "o", "/x"), (wire.INTERFACE, "s", "org.example.Test"), (wire.MEMBER, "s", "Ping")],
            "s",
            ["pong"],
        )
        sender.send(signal)
        deadline = time.monotonic() + 5
        while not any(m.member == "Ping" for m in got) and time.monotonic() < deadline:
            listener.wait_signal(deadline - time.monotonic())
        pings = [(m.member, m.path, m.body) for m in got if m.interface == "org.example.Test"]
        assert pings == [("Ping", "/x", ["pong"])]
    finally:
        listener.close()
        sender.close()


def test_refused_and_missing_buses(tmp_path: Path) -> None:
    with pytest.raises(errors.SystemdUnavailable, match="no system bus at"):
        wire.Connection.open(f"unix:path={tmp_path}/none", str(tmp_path / "none"))
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "rude"))
    server.listen()
    try:
        import threading

        def refuse() -> None:
            peer, _ = server.accept()
            peer.recv(100)
            peer.sendall(b"REJECTED EXTERNAL\r\n")
            peer.close()

        threading.Thread(target=refuse, daemon=True).start()
        with pytest.raises(errors.PermissionDenied, match="refused authentication"):
            wire.Connection.open(f"unix:path={tmp_path}/rude", "rude")
    finally:
        server.close()
