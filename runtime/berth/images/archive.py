"""Reading files out of an archive source: a directory, or a tar (random access).

Names inside are normalised (no leading `./`); a member is looked up by exact name only, so a
hostile archive cannot make the importer read anything but its own members.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Iterator
from pathlib import Path

from berth.errors import InvalidInput, NotFound

_CHUNK = 1 << 20


class ArchiveSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tar: tarfile.TarFile | None = None
        self.members: dict[str, tarfile.TarInfo] = {}
        if path.is_dir():
            return
        try:
            self.tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by close()
        except (OSError, tarfile.TarError) as exc:
            raise InvalidInput(f"{path} is neither a directory nor a readable tar: {exc}") from exc
        for member in self.tar:
            self.members[posixpath.normpath(member.name.lstrip("/")).removeprefix("./")] = member

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()

    def __enter__(self) -> ArchiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exists(self, name: str) -> bool:
        if self.tar is None:
            return (self.path / name).is_file() and not (self.path / name).is_symlink()
        member = self.members.get(name)
        return member is not None and member.isreg()

    def chunks(self, name: str) -> Iterator[bytes]:
        if self.tar is None:
            full = self.path / name
            if full.is_symlink() or not full.is_file():
                raise NotFound(f"{name} is not a regular file in {self.path}")
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    yield chunk
            return
        member = self.members.get(name)
        if member is None or not member.isreg():
            raise NotFound(f"{name} is not in {self.path}")
        fh2 = self.tar.extractfile(member)
        assert fh2 is not None
        while chunk := fh2.read(_CHUNK):
            yield chunk

    def read(self, name: str, limit: int) -> bytes:
        out = bytearray()
        for chunk in self.chunks(name):
            out += chunk
            if len(out) > limit:
                raise InvalidInput(f"{name} in {self.path} is larger than {limit} bytes")
        return bytes(out)
