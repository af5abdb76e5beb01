"""Read-only lookups in the merged view of a stack of unpacked layers, without mounting it.

Build steps that do not run a container (COPY, ADD, USER lookups) need to know what a path is in
the image so far: whether /bin is a symlink to usr/bin, the mode of an existing parent directory,
the contents of /etc/passwd. Lookups follow overlay semantics (whiteouts, opaque dirs, a non-dir
in an upper layer hiding the lower ones) and resolve symlinks by hand within the view: nothing is
ever followed on the host.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections import deque
from pathlib import Path

from berth.errors import InvalidInput
from berth.images.extract import OPAQUE_XATTR

MAX_HOPS = 40


class LayerView:
    def __init__(self, layers: list[Path]) -> None:
        self.top_down = list(reversed(layers))

    def _in_layer(self, layer: Path, path: str) -> tuple[Path | None, bool]:
        """(entry, hides_lower): the entry for `path` in one layer, walking its ancestors safely."""
        parts = [p for p in path.split("/") if p]
        cur = layer
        hidden = False  # an opaque ancestor in this layer hides everything below it in lower ones
        for i, part in enumerate(parts):
            try:
                hidden = hidden or os.getxattr(cur, OPAQUE_XATTR, follow_symlinks=False) == b"y"
            except OSError:
                pass
            nxt = cur / part
            try:
                st = os.lstat(nxt)
            except FileNotFoundError:
                return None, hidden
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return None, True
            if i == len(parts) - 1:
                return nxt, True
            if not stat.S_ISDIR(st.st_mode):
                return None, True
            cur = nxt
        return layer, True

    def entry(self, path: str) -> Path | None:
        """The host path of `path` (absolute, already resolved) in the topmost layer that has it."""
        for layer in self.top_down:
            found, hides = self._in_layer(layer, path)
            if found is not None:
                return found
            if hides:
                return None
        return None

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """The canonical absolute path of `path` in the view, symlinks resolved within the view."""
        parts = deque(p for p in path.split("/") if p)
        cur = "/"
        hops = 0
        while parts:
            name = parts.popleft()
            if name == ".":
                continue
            if name == "..":
                cur = posixpath.dirname(cur)
                continue
            cand = posixpath.join(cur, name)
            found = self.entry(cand)
            if found is not None and found.is_symlink() and (parts or follow_last):
                hops += 1
                if hops > MAX_HOPS:
                    raise InvalidInput(f"too many levels of symbolic links resolving {path!r} in the image")
                target = os.readlink(found)
                if target.startswith("/"):
                    cur = "/"
                parts.extendleft(reversed([p for p in target.split("/") if p]))
                continue
            cur = cand
        return cur

    def lstat(self, path: str) -> os.stat_result | None:
        found = self.entry(path)
        return os.lstat(found) if found is not None else None

    def read_text(self, path: str, limit: int = 1 << 20) -> str | None:
        found = self.entry(self.resolve(path))
        if found is None or not stat.S_ISREG(os.lstat(found).st_mode):
            return None
        with open(found, "rb") as fh:
            return fh.read(limit).decode("utf-8", "replace")
