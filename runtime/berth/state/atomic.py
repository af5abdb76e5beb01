"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory.

A reader sees either the old content or the new one, never a torn file, even if the process
is killed or the host loses power in the middle of the write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from berth.errors import STORAGE_ERRNOS, storage_error


def _open_temp(directory: Path, name: str) -> tuple[int, str]:
    """A new file `.NAME.XXXXXXXX.tmp` in `directory`, made as tempfile.mkstemp makes one
    (O_EXCL, O_NOFOLLOW, mode 0600), without importing tempfile and random into every command."""
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{os.urandom(4).hex()}.tmp")
        try:
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no unused temporary file name in {directory}")


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `path` whole or not at all; a full or read-only disk is a StorageError naming it."""
    try:
        _write(path, data, mode)
    except OSError as exc:
        if exc.errno in STORAGE_ERRNOS:
            exc.filename = exc.filename or str(path)
            raise storage_error(exc, "cannot write") from exc
        raise


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any, mode: int = 0o644) -> None:
    data = json.dumps(obj, indent=2, sort_keys=True).encode() + b"\n"
    atomic_write_bytes(path, data, mode)


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_file(path: Path) -> bool:
    """Remove `path` durably; return whether it existed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True
