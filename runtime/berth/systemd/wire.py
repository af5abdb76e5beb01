"""A small synchronous D-Bus connection: berth's own ("native") backend for talking to systemd.

Why it exists: the CLI is a short-lived process, and importing asyncio with dbus-fast costs it
about 90 ms per command on the machines we measure (`berth run` start latency, issues 3 and 9),
far more than all the D-Bus traffic of a command. This module needs only `socket` and `struct`.

What it covers, and no more: a `unix:` address, SASL EXTERNAL with unix-fd negotiation (the auth
lines are pipelined, as sd-bus does), method calls with the whole D-Bus type system (every
signature marshals and unmarshals; a `v` comes back as a `Variant`, a struct as a list, an `ay`
as bytes, a dict as a dict, as dbus-fast gives them), file descriptors sent along with a call,
and signals dispatched to handlers while a caller waits. Error replies become berth errors
through `map_dbus_error`, exactly as in the adapter over the libraries (`berth.systemd.bus`).
"""

from __future__ import annotations

import array
import os
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from berth.errors import BerthError, PermissionDenied, SystemdUnavailable, Timeout
from berth.systemd.error_map import map_dbus_error

DEFAULT_SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
BACKEND_ENV = "BERTH_DBUS_BACKEND"  # see berth.systemd.bus and berth.systemd.sync
NATIVE = "native"  # this module's backend name
CALL_TIMEOUT = 30.0  # seconds; a method reply (not a job) never legitimately takes longer
PIPELINE_CHUNK = 64  # calls in flight at once; the system bus allows 128 pending replies per connection
CONNECT_TIMEOUT = 30.0

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
NO_REPLY_EXPECTED = 0x1
# Header field codes.
PATH, INTERFACE, MEMBER, ERROR_NAME, REPLY_SERIAL, DESTINATION, SENDER, SIGNATURE, UNIX_FDS = range(1, 10)

_ALIGN = {
    "y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8, "h": 4,
    "s": 4, "o": 4, "g": 1, "a": 4, "(": 8, "{": 8, "v": 1,
}  # fmt: skip
_FIXED = {"b": "I", "n": "h", "q": "H", "i": "i", "u": "I", "x": "q", "t": "Q", "d": "d", "h": "I"}
_NATIVE = "<" if sys.byteorder == "little" else ">"
_ENDIAN_FLAG = b"l" if sys.byteorder == "little" else b"B"


class Variant:
    """A D-Bus variant: a value with its signature (what a `v` is marshalled from and read into)."""

    __slots__ = ("signature", "value")

    def __init__(self, signature: str, value: Any) -> None:
        self.signature = signature
        self.value = value

    def __repr__(self) -> str:
        return f"Variant({self.signature!r}, {self.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Variant) and (other.signature, other.value) == (self.signature, self.value)

    __hash__ = None  # type: ignore[assignment]  # mutable value, as dbus-fast's


class AuthFailed(Exception):
    """The bus refused SASL EXTERNAL authentication."""


class ProtocolError(Exception):
    """A message that does not follow the D-Bus wire format."""


# -- signatures ----------------------------------------------------------------------------------
def _type_end(sig: str, i: int) -> int:
    """The index just past the single complete type that starts at sig[i]."""
    c = sig[i]
    if c == "a":
        return _type_end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        i += 1
        while sig[i] != close:
            i = _type_end(sig, i)
        return i + 1
    if c not in _ALIGN:
        raise ProtocolError(f"unknown type code {c!r} in signature {sig!r}")
    return i + 1


_SPLIT_CACHE: dict[str, list[str]] = {}


def split_signature(sig: str) -> list[str]:
    """'sa{sv}(ii)' -> ['s', 'a{sv}', '(ii)']."""
    cached = _SPLIT_CACHE.get(sig)
    if cached is None:
        cached, i = [], 0
        try:
            while i < len(sig):
                end = _type_end(sig, i)
                cached.append(sig[i:end])
                i = end
        except IndexError:
            raise ProtocolError(f"incomplete signature {sig!r}") from None
        _SPLIT_CACHE[sig] = cached
    return cached


# -- marshalling ---------------------------------------------------------------------------------
class _Writer:
    """Appends values to `buf`; alignment is relative to the start of the message."""

    def __init__(self, buf: bytearray, fmt: str = _NATIVE) -> None:
        self.buf = buf
        self.fmt = fmt

    def align(self, n: int) -> None:
        pad = -len(self.buf) % n
        if pad:
            self.buf += bytes(pad)

    def write(self, sig: str, value: Any) -> None:
        c = sig[0]
        buf = self.buf
        if c == "y":
            buf.append(value[0] if isinstance(value, (bytes, bytearray)) else int(value))
        elif c in _FIXED:
            self.align(_ALIGN[c])
            if c == "b":
                value = 1 if value else 0
            buf += struct.pack(self.fmt + _FIXED[c], value)
        elif c in "so":
            data = str(value).encode()
            self.align(4)
            buf += struct.pack(self.fmt + "I", len(data))
            buf += data
            buf.append(0)
        elif c == "g":
            data = str(value).encode()
            buf.append(len(data))
            buf += data
            buf.append(0)
        elif c == "v":
            if not isinstance(value, Variant):
                raise ProtocolError(f"a variant needs a Variant, not {type(value).__name__}")
            self.write("g", value.signature)
            self.write(value.signature, value.value)
        elif c == "a":
            self.align(4)
            at = len(buf)
            buf += bytes(4)
            elem = sig[1:]
            self.align(_ALIGN[elem[0]])
            start = len(buf)
            if elem == "y":
                buf += bytes(value)
            elif elem[0] == "{":
                key_sig, value_sig = split_signature(elem[1:-1])
                for k, v in value.items():
                    self.align(8)
                    self.write(key_sig, k)
                    self.write(value_sig, v)
            else:
                for item in value:
                    self.write(elem, item)
            struct.pack_into(self.fmt + "I", buf, at, len(buf) - start)
        elif c == "(":
            self.align(8)
            fields = split_signature(sig[1:-1])
            items = list(value)
            if len(items) != len(fields):
                raise ProtocolError(f"struct {sig} needs {len(fields)} values, got {len(items)}")
            for field_sig, item in zip(fields, items, strict=True):
                self.write(field_sig, item)
        else:
            raise ProtocolError(f"cannot marshal type {sig!r}")


def marshal_body(signature: str, body: Sequence[Any]) -> bytes:
    """The body of a message (it starts 8-aligned, so alignment from 0 is the message's)."""
    types = split_signature(signature)
    if len(types) != len(body):
        raise ProtocolError(f"signature {signature!r} needs {len(types)} values, got {len(body)}")
    w = _Writer(bytearray())
    for t, v in zip(types, body, strict=True):
        w.write(t, v)
    return bytes(w.buf)


def build_message(
    kind: int,
    serial: int,
    fields: Sequence[tuple[int, str, Any]],
    signature: str = "",
    body: Sequence[Any] = (),
    flags: int = 0,
) -> bytes:
    payload = marshal_body(signature, body) if signature else b""
    head = bytearray(_ENDIAN_FLAG + struct.pack(_NATIVE + "BBBII", kind, flags, 1, len(payload), serial))
    w = _Writer(head)
    entries = [(code, Variant(sig, value)) for code, sig, value in fields]
    if signature:
        entries.append((SIGNATURE, Variant("g", signature)))
    w.write("a(yv)", sorted(entries, key=lambda entry: entry[0]))  # in code order, as sd-bus
    w.align(8)
    return bytes(head) + payload


# -- unmarshalling -------------------------------------------------------------------------------
class _Reader:
    __slots__ = ("data", "fmt", "pos")

    def __init__(self, data: bytes | memoryview, pos: int, fmt: str) -> None:
        self.data = data
        self.pos = pos
        self.fmt = fmt

    def read(self, sig: str) -> Any:
        c = sig[0]
        data = self.data
        if c == "y":
            self.pos += 1
            return data[self.pos - 1]
        if c in _FIXED:
            size = _ALIGN[c]
            pos = self.pos + (-self.pos % size)
            (value,) = struct.unpack_from(self.fmt + _FIXED[c], data, pos)
            self.pos = pos + size
            return bool(value) if c == "b" else value
        if c in "so":
            pos = self.pos + (-self.pos % 4)
            (n,) = struct.unpack_from(self.fmt + "I", data, pos)
            pos += 4
            self.pos = pos + n + 1
            return bytes(data[pos : pos + n]).decode()
        if c == "g":
            n = data[self.pos]
            start = self.pos + 1
            self.pos = start + n + 1
            return bytes(data[start : start + n]).decode()
        if c == "v":
            inner = self.read("g")
            return Variant(inner, self.read(inner))
        if c == "a":
            pos = self.pos + (-self.pos % 4)
            (n,) = struct.unpack_from(self.fmt + "I", data, pos)
            pos += 4
            elem = sig[1:]
            pos += -pos % _ALIGN[elem[0]]
            end = pos + n
            if elem == "y":
                self.pos = end
                return bytes(data[pos:end])
            self.pos = pos
            if elem[0] == "{":
                key_sig, value_sig = split_signature(elem[1:-1])
                out: dict[Any, Any] = {}
                while self.pos < end:
                    self.pos += -self.pos % 8
                    key = self.read(key_sig)
                    out[key] = self.read(value_sig)
                return out
            items = []
            while self.pos < end:
                items.append(self.read(elem))
            return items
        if c == "(":
            self.pos += -self.pos % 8
            return [self.read(t) for t in split_signature(sig[1:-1])]
        raise ProtocolError(f"cannot unmarshal type {sig!r}")


class Message:
    """A received message: its kind, header fields and body (a list of values)."""

    __slots__ = ("body", "fields", "flags", "kind", "serial")

    def __init__(self, kind: int, flags: int, serial: int, fields: dict[int, Any], body: list[Any]) -> None:
        self.kind = kind
        self.flags = flags
        self.serial = serial
        self.fields = fields
        self.body = body

    @property
    def path(self) -> str | None:
        return self.fields.get(PATH)

    @property
    def interface(self) -> str | None:
        return self.fields.get(INTERFACE)

    @property
    def member(self) -> str | None:
        return self.fields.get(MEMBER)

    @property
    def sender(self) -> str | None:
        return self.fields.get(SENDER)


def message_size(head: bytes | bytearray | memoryview) -> int:
    """The whole size of the message whose first 16 bytes are `head`."""
    if head[0] not in (0x6C, 0x42):  # 'l', 'B'
        raise ProtocolError(f"bad endianness byte {head[0]!r}")
    fmt = "<" if head[0] == 0x6C else ">"
    body_len, _serial, fields_len = struct.unpack_from(fmt + "III", head, 4)
    header: int = 16 + fields_len
    return header + (-header % 8) + int(body_len)


def parse_message(data: bytes | memoryview) -> Message:
    fmt = "<" if data[0] == 0x6C else ">"
    kind, flags = data[1], data[2]
    body_len, serial = struct.unpack_from(fmt + "II", data, 4)
    r = _Reader(data, 12, fmt)
    fields = {code: variant.value for code, variant in r.read("a(yv)")}
    r.pos += -r.pos % 8
    body: list[Any] = []
    signature = fields.get(SIGNATURE, "")
    if signature and body_len:
        body = [r.read(t) for t in split_signature(signature)]
    return Message(kind, flags, serial, fields, body)


# -- the connection ------------------------------------------------------------------------------
def system_bus_address() -> str:
    return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS


def connect_failure(exc: OSError, address: str, where: str) -> BerthError:
    """A refused, missing or forbidden bus socket, as every client reports it (this one, the adapter)."""
    if isinstance(exc, PermissionError):
        return PermissionDenied(
            f"cannot connect to the system bus at {where}: {exc.strerror}", address=address
        )
    return SystemdUnavailable(
        f"no system bus at {where} ({exc.strerror or exc}); is dbus running? "
        "berth needs a host booted with systemd",
        address=address,
    )


def socket_path(address: str) -> str:
    """The socket path of a `unix:path=...` address, for messages; the address otherwise."""
    for part in address.split(";")[0].partition(":")[2].split(","):
        key, _, value = part.partition("=")
        if key == "path":
            return value
    return address


def parse_address(address: str) -> str | None:
    """The socket address of the first `unix:` transport (abstract ones start with NUL), or None."""
    for transport in address.split(";"):
        kind, _, rest = transport.partition(":")
        if kind != "unix":
            continue
        for part in rest.split(","):
            key, _, value = part.partition("=")
            if key == "path":
                return _unescape(value)
            if key == "abstract":
                return "\0" + _unescape(value)
    return None


def _unescape(value: str) -> str:
    if "%" not in value:
        return value
    out, i = bytearray(), 0
    raw = value.encode()
    while i < len(raw):
        if raw[i] == 0x25 and i + 3 <= len(raw):  # '%' and two hex digits
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode()


class Connection:
    """One authenticated connection; `call` blocks until the reply, dispatching signals meanwhile."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"", unix_fds: bool = True) -> None:
        self.sock = sock
        self.unix_fds = unix_fds
        self._buf = bytearray(buffered)
        self._serial = 0
        self._handlers: list[Callable[[Message], None]] = []
        self._closed = False

    @classmethod
    def open(cls, address: str, where: str, timeout: float = CONNECT_TIMEOUT) -> Connection:
        """Connect, authenticate and say Hello; errors are berth's (see `berth.systemd.bus.connect`)."""
        target = parse_address(address)
        if target is None:
            raise SystemdUnavailable(f"no unix socket in the bus address {address!r}", address=address)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(timeout)
            try:
                sock.connect(target)
            except (FileNotFoundError, ConnectionRefusedError, PermissionError) as exc:
                raise connect_failure(exc, address, where) from None
            conn = cls._authenticate(sock, address, where, time.monotonic() + timeout)
        except TimeoutError:
            sock.close()
            raise SystemdUnavailable(
                f"the system bus at {where} did not answer within {timeout:g}s", address=address
            ) from None
        except (OSError, EOFError, ProtocolError) as exc:
            sock.close()
            raise SystemdUnavailable(f"lost the system bus at {where}: {exc}", address=address) from exc
        except BaseException:
            sock.close()
            raise
        return conn

    @classmethod
    def _authenticate(cls, sock: socket.socket, address: str, where: str, deadline: float) -> Connection:
        uid = str(os.geteuid()).encode().hex().encode()
        hello = build_message(
            METHOD_CALL,
            1,
            [
                (PATH, "o", "/org/freedesktop/DBus"),
                (INTERFACE, "s", "org.freedesktop.DBus"),
                (MEMBER, "s", "Hello"),
                (DESTINATION, "s", "org.freedesktop.DBus"),
            ],
        )
        # Pipelined, as sd-bus does: the bus answers the lines in order, then reads messages.
        sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n" + hello)
        buf = bytearray()
        lines: list[bytes] = []
        while len(lines) < 2:
            end = buf.find(b"\r\n")
            if end >= 0:
                line = bytes(buf[:end])
                del buf[: end + 2]
                lines.append(line)
                if len(lines) == 1 and not line.startswith(b"OK"):
                    raise PermissionDenied(
                        f"the system bus at {where} refused authentication: {line.decode(errors='replace')}",
                        address=address,
                    )
                continue
            chunk = _recv(sock, deadline, "authentication", where)
            buf += chunk
        conn = cls(sock, bytes(buf), unix_fds=lines[1].startswith(b"AGREE_UNIX_FD"))
        conn._serial = 1
        reply = conn._wait_reply(1, "Hello", deadline)
        if reply.kind == ERROR:
            raise _error(reply, "Hello")
        return conn

    # -- sending -------------------------------------------------------------------------------
    def _next_serial(self) -> int:
        self._serial = self._serial % 0xFFFFFFFF + 1
        return self._serial

    def send(self, data: bytes, fds: Sequence[int] = ()) -> None:
        if fds:
            if not self.unix_fds:
                raise BerthError("the system bus does not pass file descriptors on this connection")
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
            sent = self.sock.sendmsg([data], ancillary)
            data = data[sent:]
        if data:
            self.sock.sendall(data)

    def call(
        self,
        destination: str,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: Sequence[Any] = (),
        timeout: float = CALL_TIMEOUT,
        unix_fds: Sequence[int] = (),
    ) -> list[Any]:
        """Call a method; return the reply body or raise the mapped berth error."""
        serial = self._next_serial()
        fields: list[tuple[int, str, Any]] = [
            (PATH, "o", path),
            (INTERFACE, "s", interface),
            (MEMBER, "s", member),
            (DESTINATION, "s", destination),
        ]
        if unix_fds:
            fields.append((UNIX_FDS, "u", len(unix_fds)))
        data = build_message(METHOD_CALL, serial, fields, signature, list(body))
        deadline = time.monotonic() + timeout
        try:
            self.send(data, unix_fds)
            reply = self._wait_reply(serial, member, deadline)
        except TimeoutError:
            raise Timeout(f"no reply to {member} within {timeout:g}s", method=member) from None
        except (OSError, EOFError, ProtocolError) as exc:
            raise SystemdUnavailable(
                f"lost the system bus connection during {member}: {exc}", method=member
            ) from exc
        if reply.kind == ERROR:
            raise _error(reply, member)
        return reply.body

    def call_many(
        self, calls: Sequence[tuple[str, str, str, str, str, Sequence[Any]]], timeout: float = CALL_TIMEOUT
    ) -> list[list[Any] | BerthError]:
        """Pipelined calls (destination, path, interface, member, signature, body): a chunk is
        sent at once, then its replies are read, so N calls cost about one round trip through the
        bus rather than N (each a wake-up of the bus daemon and of systemd). Each call's reply
        body, or its mapped error, in order; a lost connection or a timeout raises."""
        out: list[list[Any] | BerthError] = []
        for first in range(0, len(calls), PIPELINE_CHUNK):
            sent: list[tuple[int, str]] = []
            data = bytearray()
            for destination, path, interface, member, signature, body in calls[
                first : first + PIPELINE_CHUNK
            ]:
                serial = self._next_serial()
                fields = [
                    (PATH, "o", path),
                    (INTERFACE, "s", interface),
                    (MEMBER, "s", member),
                    (DESTINATION, "s", destination),
                ]
                data += build_message(METHOD_CALL, serial, fields, signature, list(body))
                sent.append((serial, member))
            pending = {s for s, _ in sent}
            replies: dict[int, Message] = {}
            deadline = time.monotonic() + timeout
            try:
                self.send(bytes(data))
                while pending:
                    msg = self._read_message(deadline, "replies")
                    answered = msg.fields.get(REPLY_SERIAL)
                    if msg.kind in (METHOD_RETURN, ERROR) and answered in pending:
                        pending.discard(answered)
                        replies[answered] = msg
                    else:
                        self._dispatch(msg)
            except TimeoutError:
                raise Timeout(f"no reply to {len(sent)} pipelined calls within {timeout:g}s") from None
            except (OSError, EOFError, ProtocolError) as exc:
                raise SystemdUnavailable(
                    f"lost the system bus connection during pipelined calls: {exc}"
                ) from exc
            for serial, member in sent:
                reply = replies[serial]
                out.append(_error(reply, member) if reply.kind == ERROR else reply.body)
        return out

    # -- receiving -----------------------------------------------------------------------------
    def add_handler(self, handler: Callable[[Message], None]) -> None:
        """`handler(message)` for every signal received from now on (while a call waits, too)."""
        self._handlers.append(handler)

    def _wait_reply(self, serial: int, member: str, deadline: float) -> Message:
        while True:
            msg = self._read_message(deadline, member)
            if msg.kind in (METHOD_RETURN, ERROR) and msg.fields.get(REPLY_SERIAL) == serial:
                return msg
            self._dispatch(msg)

    def wait_signal(self, timeout: float) -> bool:
        """Read and dispatch messages until one signal arrived (True) or `timeout` s passed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self._read_message(deadline, "a signal")
            except TimeoutError:
                return False
            except (OSError, EOFError, ProtocolError) as exc:
                raise SystemdUnavailable(f"lost the system bus connection: {exc}") from exc
            self._dispatch(msg)
            if msg.kind == SIGNAL:
                return True

    def _dispatch(self, msg: Message) -> None:
        if msg.kind == SIGNAL:
            for handler in list(self._handlers):
                handler(msg)
        # method calls to us (nobody makes any) and stray replies are dropped

    def _read_message(self, deadline: float, what: str) -> Message:
        while True:
            if len(self._buf) >= 16:
                size = message_size(self._buf)
                if len(self._buf) >= size:
                    data = bytes(self._buf[:size])
                    del self._buf[:size]
                    try:
                        return parse_message(data)
                    except (struct.error, IndexError, KeyError, UnicodeDecodeError) as exc:
                        raise ProtocolError(f"a malformed message: {exc!r}") from None
            self._buf += _recv(self.sock, deadline, what, None)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.sock.close()


def _recv(sock: socket.socket, deadline: float, what: str, where: str | None) -> bytes:
    """Some bytes; `where` names the bus while authenticating (EOF then means refused)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError(f"timed out waiting for {what}")
    sock.settimeout(remaining)
    chunk = sock.recv(65536)
    if not chunk:
        if where is not None:
            raise PermissionDenied(f"the system bus at {where} closed the connection during authentication")
        raise EOFError("the bus closed the connection")
    return chunk


def _error(reply: Message, member: str) -> BerthError:
    text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
    return map_dbus_error(str(reply.fields.get(ERROR_NAME, "")), text, member)
