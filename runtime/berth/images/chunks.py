"""A file-like reader over an iterator of byte chunks, without quadratic copying."""

from __future__ import annotations

from typing import Any


class ChunkReader:
    """A file-like view of an iterator of chunks (tarfile reads it in small blocks)."""

    def __init__(self, chunks: Any) -> None:
        self.it = iter(chunks)
        self.chunk = b""
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        parts = []
        while n < 0 or n > 0:
            if self.pos >= len(self.chunk):
                nxt = next(self.it, None)
                if nxt is None:
                    break
                self.chunk, self.pos = nxt, 0
            take = len(self.chunk) - self.pos if n < 0 else min(n, len(self.chunk) - self.pos)
            parts.append(self.chunk[self.pos : self.pos + take])
            self.pos += take
            if n > 0:
                n -= take
        return b"".join(parts)
