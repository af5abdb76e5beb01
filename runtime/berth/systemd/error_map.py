"""D-Bus error names -> berth errors: one table, so every call site reports failures alike."""

from __future__ import annotations

from berth.errors import (
    BerthError,
    Conflict,
    DBusCallFailed,
    NotFound,
    PermissionDenied,
    SystemdUnavailable,
)

ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
AUTH_REQUIRED = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
SERVICE_UNKNOWN = "org.freedesktop.DBus.Error.ServiceUnknown"
NAME_HAS_NO_OWNER = "org.freedesktop.DBus.Error.NameHasNoOwner"
NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
UNIT_EXISTS = "org.freedesktop.systemd1.UnitExists"

_PERMISSION = frozenset({ACCESS_DENIED, AUTH_REQUIRED})
_NO_SYSTEMD = frozenset({SERVICE_UNKNOWN, NAME_HAS_NO_OWNER})


def map_dbus_error(name: str, text: str, method: str) -> BerthError:
    """The berth error for a D-Bus error reply `name` (with its message `text`) to `method`."""
    details = {"dbus_error": name, "method": method}
    text = text or name
    if name in _PERMISSION:
        return PermissionDenied(
            f"systemd refused {method}: {text} ({name}); managing units needs root", **details
        )
    if name in _NO_SYSTEMD:
        return SystemdUnavailable(
            f"systemd is not running on this system bus ({name}: {text}); "
            "berth needs a host booted with systemd",
            **details,
        )
    if name == NO_SUCH_UNIT:
        return NotFound(text, **details)
    if name == UNIT_EXISTS:
        return Conflict(text, **details)
    return DBusCallFailed(f"{method} failed: {name}: {text}", **details)
