"""The one adapter over dbus-fast and dbus-next; nothing else imports either library.

Both offer the same low-level API (`Message`, `Variant`, `aio.MessageBus.call`), and we use only
that, with explicit signatures, so no call pays for an introspection round trip. dbus-fast is
preferred; dbus-next is what Debian ships (python3-dbus-next). `BERTH_DBUS_BACKEND=dbus-fast` or
`=dbus-next` forces one. The libraries are imported on first use: they cost tens of ms.

The blocking front (`berth.systemd.sync.Systemd`, what the CLI uses) needs neither library nor
asyncio: by default it talks to systemd with berth's own small connection (`berth.systemd.wire`,
backend "native"); `BERTH_DBUS_BACKEND=dbus-fast|dbus-next` makes it use this adapter instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from berth.errors import InvalidInput, PermissionDenied, SystemdUnavailable, Timeout, Unsupported
from berth.systemd.error_map import map_dbus_error
from berth.systemd.wire import (
    BACKEND_ENV,
    CALL_TIMEOUT,
    DEFAULT_SYSTEM_BUS,
    NATIVE,
    connect_failure,
    socket_path,
    system_bus_address,
)

__all__ = [
    "BACKEND_ENV",
    "CALL_TIMEOUT",
    "DEFAULT_SYSTEM_BUS",
    "NATIVE",
    "Backend",
    "Bus",
    "Signal",
    "connect",
    "load_backend",
    "socket_path",
]

BACKENDS = ("dbus-fast", "dbus-next")  # NATIVE, berth's own blocking client, is the CLI's default
CLOSE_TIMEOUT = 1.0


@dataclass(frozen=True)
class Backend:
    """The handful of names berth uses from one D-Bus library."""

    name: str
    Message: Any
    MessageType: Any
    Variant: Any
    MessageBus: Any
    AuthError: type[Exception]


@dataclass(frozen=True)
class Signal:
    """A received signal, independent of the backend's message class."""

    sender: str | None
    path: str | None
    interface: str | None
    member: str | None
    body: list[Any]


def load_backend(requested: str | None = None) -> Backend:
    """Import the requested backend, or the first of `BACKENDS` that is installed."""
    requested = requested or os.environ.get(BACKEND_ENV) or None
    if requested == NATIVE:  # a choice for the blocking front; asyncio users take a library
        requested = None
    if requested is not None and requested not in BACKENDS:
        raise InvalidInput(
            f"{BACKEND_ENV}={requested!r} is not a D-Bus backend; use one of {', '.join((NATIVE, *BACKENDS))}"
        )
    for name in [requested] if requested else BACKENDS:
        assert name is not None
        module = name.replace("-", "_")
        try:
            lib = importlib.import_module(module)
            aio = importlib.import_module(f"{module}.aio")
        except ImportError:
            if requested:
                raise Unsupported(
                    f"{BACKEND_ENV}={name} but the Python package {name} is not installed "
                    f"for {sys.executable}"
                ) from None
            continue
        return Backend(name, lib.Message, lib.MessageType, lib.Variant, aio.MessageBus, lib.AuthError)
    raise Unsupported(f"no D-Bus library: install dbus-fast (or dbus-next) for {sys.executable}")


class Bus:
    """A connected bus: method calls with explicit signatures, and signal handlers."""

    def __init__(self, backend: Backend, raw: Any, address: str) -> None:
        self.backend = backend
        self.address = address
        self._raw = raw

    def variant(self, signature: str, value: Any) -> Any:
        return self.backend.Variant(signature, value)

    async def call(
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
        """Call a method; return the reply body or raise the mapped berth error.

        `unix_fds` are passed along with the message; an `h` value in `body` is an index into it.
        """
        import asyncio  # here, not at the top: the blocking front imports this module too

        msg = self.backend.Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=list(body),
            unix_fds=list(unix_fds),
        )
        try:
            reply = await asyncio.wait_for(self._raw.call(msg), timeout)
        except TimeoutError:
            raise Timeout(f"no reply to {member} within {timeout:g}s", method=member) from None
        except (OSError, EOFError) as exc:
            raise SystemdUnavailable(
                f"lost the system bus connection during {member}: {exc}", method=member
            ) from exc
        if reply.message_type == self.backend.MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise map_dbus_error(str(reply.error_name), text, member)
        return list(reply.body)

    def add_signal_handler(self, callback: Callable[[Signal], None]) -> None:
        signal_type = self.backend.MessageType.SIGNAL

        def handler(msg: Any) -> None:
            if msg.message_type == signal_type:
                callback(Signal(msg.sender, msg.path, msg.interface, msg.member, list(msg.body)))

        self._raw.add_message_handler(handler)

    async def add_match(self, rule: str) -> None:
        await self.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            "s",
            [rule],
        )

    async def close(self) -> None:
        """Disconnect and wait until the socket is closed (dbus-next closes it from the loop)."""
        import asyncio

        self._raw.disconnect()
        try:
            await asyncio.wait_for(self._raw.wait_for_disconnect(), CLOSE_TIMEOUT)
        except Exception:  # it re-raises whatever ended the connection; we are done with it
            pass
        for leftover in (getattr(self._raw, "_stream", None), getattr(self._raw, "_sock", None)):
            if leftover is not None:  # dbus-next only shuts its socket down; closing twice is harmless
                leftover.close()


async def connect(backend: Backend | None = None, address: str | None = None) -> Bus:
    """Connect to the system bus; a missing or refused socket is `SystemdUnavailable`."""
    backend = backend or load_backend()
    address = address or system_bus_address()
    where = socket_path(address)
    try:
        # File descriptors travel with StartTransientUnit (a foreground container's stdio).
        raw = backend.MessageBus(bus_address=address, negotiate_unix_fd=True)  # dbus-next connects here
        await raw.connect()  # dbus-fast connects here
    except (FileNotFoundError, ConnectionRefusedError, PermissionError) as exc:
        raise connect_failure(exc, address, where) from None
    except backend.AuthError as exc:
        raise PermissionDenied(
            f"the system bus at {where} refused authentication: {exc}", address=address
        ) from None
    return Bus(backend, raw, address)
