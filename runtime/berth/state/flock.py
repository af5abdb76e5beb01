"""An exclusive lock on a file with flock(2), for the locks on berth's hot paths.

It is what `filelock.FileLock` does on Linux (flock on a lock file that stays in place), so the
two exclude each other on the same path, but it imports nothing: filelock costs a short-lived
CLI process tens of milliseconds to import. It blocks in the kernel (no polling) and, like
FileLock, refuses to be taken twice by one thread (that would wait for itself forever).
"""

from __future__ import annotations

import _thread
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_held: set[tuple[int, str]] = set()  # (thread, lock path) of the locks held in this process


@contextmanager
def flocked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created 0644 if missing) for the `with` block."""
    key = (_thread.get_ident(), os.path.abspath(path))
    if key in _held:
        raise RuntimeError(f"deadlock: this thread already holds the lock {key[1]}")
    fd = os.open(key[1], os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _held.add(key)
        try:
            yield
        finally:
            _held.discard(key)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
