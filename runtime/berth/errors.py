"""Typed failures. Every error the runtime reports is one of these.

The CLI turns them into a message (or a JSON error object) in exactly one place,
`berth.cli.main`; nothing else prints errors or picks exit codes.
"""

from __future__ import annotations

import errno
from typing import Any


class BerthError(Exception):
    """Base of every expected failure; `kind` and `exit_code` are part of the JSON contract."""

    kind = "error"
    exit_code = 1

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "details": self.details}


class InvalidInput(BerthError):
    """The caller asked for something malformed (a name, a spec, a limit)."""

    kind = "invalid-input"
    exit_code = 2


class NotFound(BerthError):
    kind = "not-found"
    exit_code = 3


class Conflict(BerthError):
    """The request clashes with something that exists (a name, a running lab, a route)."""

    kind = "conflict"
    exit_code = 4


class Unsupported(BerthError):
    """The host lacks what the request needs (a kernel feature, a binary, a controller)."""

    kind = "unsupported"
    exit_code = 5


class PermissionDenied(BerthError):
    kind = "permission-denied"
    exit_code = 6


class SystemdUnavailable(BerthError):
    """No system bus, or systemd is not on it."""

    kind = "systemd-unavailable"
    exit_code = 7


class JobFailed(BerthError):
    """A systemd job finished with a result other than `done`."""

    kind = "job-failed"
    exit_code = 8


class DBusCallFailed(BerthError):
    """A D-Bus call failed for a reason none of the narrower errors describes."""

    kind = "dbus-error"
    exit_code = 9


class LabError(BerthError):
    """`berth lab` could not bring a host up or down."""

    kind = "lab-error"
    exit_code = 10


class Timeout(BerthError):
    kind = "timeout"
    exit_code = 11


class StartFailed(BerthError):
    """A container's process could not be started; `message` carries the shim's reason."""

    kind = "start-failed"
    exit_code = 12


class IntegrityError(BerthError):
    """Content does not match what was promised: a digest, a size, a diff ID, a stored blob."""

    kind = "integrity-error"
    exit_code = 12


class RegistryError(BerthError):
    """A registry failed to serve a request (5xx, a cut connection, a stall) after the retries."""

    kind = "registry-error"
    exit_code = 13


class DeployFailed(BerthError):
    """A deploy or rollback did not complete; `details` say why and where the host ended up."""

    kind = "deploy-failed"
    exit_code = 14


class StorageError(BerthError):
    """The host's storage refused a write: full, over quota, or read-only. Nothing half-written
    stays behind (writes are atomic); the command can run again once there is room."""

    kind = "storage-error"
    exit_code = 15


# What the host's storage, not Berth's input or a bug, is to blame for.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def storage_error(exc: OSError, doing: str) -> StorageError:
    """`exc` (one of STORAGE_ERRNOS) as the typed error, saying what could not be written."""
    where = f" {exc.filename}" if exc.filename else ""
    return StorageError(f"{doing}{where}: {exc.strerror}", errno=errno.errorcode.get(exc.errno or 0))
