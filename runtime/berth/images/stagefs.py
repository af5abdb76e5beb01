"""A stage's (or an image's) root filesystem as COPY --from reads it: straight from its layers.

Nothing is mounted or extracted. Paths are looked up in the merged view of the unpacked layers
(`LayerView`: whiteouts, opaque dirs, symlinks resolved inside the view, so an absolute link
means the stage's root, never the host's) and directories are listed by merging the layers top
down. Copied symlinks stay links; files are opened with O_NOFOLLOW at paths whose every
ancestor was checked to be a real directory inside the layer.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import stat
import tarfile
from pathlib import Path

from berth.images.extract import OPAQUE_XATTR
from berth.images.layers import add_entry, info_for, xattrs_of
from berth.images.layerview import LayerView

GLOB_CHARS = "*?["


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _dir_in_layer(layer: Path, path: str) -> tuple[Path | None, bool]:
    """(the directory `path` in one layer or None, whether lower layers are hidden there).

    Lower layers are hidden below an opaque directory, a whiteout or a non-directory.
    """
    cur = layer
    opaque = False
    for part in (p for p in path.split("/") if p):
        opaque = opaque or _opaque(cur)
        nxt = cur / part
        try:
            st = os.lstat(nxt)
        except FileNotFoundError:
            return None, opaque
        if not stat.S_ISDIR(st.st_mode):
            return None, True
        cur = nxt
    return cur, opaque or _opaque(cur)


class StageTree(LayerView):
    """The merged view of a stack of unpacked layers, with listing, globbing and tar output."""

    def lstat_path(self, path: str) -> os.stat_result | None:
        """lstat of a canonical path; the root always exists, even with no layers (scratch)."""
        if path == "/":
            found = self.entry("/")
            return os.lstat(found) if found is not None else None
        return self.lstat(path)

    def is_dir(self, path: str) -> bool:
        if path == "/":
            return True
        st = self.lstat(path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def listdir(self, path: str) -> list[str]:
        """Names in the directory `path` (canonical) of the merged view, sorted."""
        names: dict[str, bool] = {}  # name -> present (False: whited out by an upper layer)
        for layer in self.top_down:
            found, stop = _dir_in_layer(layer, path)
            if found is not None:
                for name in os.listdir(found):
                    if name not in names:
                        names[name] = not _is_whiteout(os.lstat(found / name))
            if stop:
                break
        return sorted(n for n, present in names.items() if present)

    def match(self, src: str) -> list[str]:
        """The canonical paths a COPY source names: one resolved path, or a glob's matches.

        Like a context source, a plain path is followed if it is a symlink (within the view) and
        a glob's matches are taken as they are. Globs match one path component per `*`, as docker.
        """
        if not any(c in src for c in GLOB_CHARS):
            path = self.resolve(src)
            return [path] if path == "/" or self.entry(path) is not None else []
        found = ["/"]
        parts = [p for p in src.split("/") if p]
        for i, part in enumerate(parts):
            nxt: list[str] = []
            for base in found:
                # Intermediate components are followed, inside the view.
                here = self.resolve(base) if i else "/"
                if not self.is_dir(here):
                    continue
                if part in (".", ".."):
                    nxt.append(posixpath.normpath(posixpath.join(here, part)))
                elif any(c in part for c in GLOB_CHARS):
                    names = [n for n in self.listdir(here) if fnmatch.fnmatchcase(n, part)]
                    nxt += [posixpath.join(here, n) for n in names]
                elif self.entry(posixpath.join(here, part)) is not None:
                    nxt.append(posixpath.join(here, part))
            found = nxt
        return found

    def add_tree(
        self,
        tf: tarfile.TarFile,
        path: str,
        target: str,
        owner: tuple[int, int] | None,
        mode: int | None,
        epoch: int | None,
        written: set[str],
        links: dict[tuple[int, int], str],
        top: bool = True,
    ) -> None:
        """Add `path` (a directory: its contents) under `target`; owner None keeps the stage's IDs.

        Sockets, fifos and devices are skipped, as in a context copy.
        """
        found = self.entry(path)
        if found is None:
            if path == "/":  # an empty stage: nothing to copy
                return
            raise FileNotFoundError(path)
        st = os.lstat(found)
        arc = target.lstrip("/")
        is_dir = stat.S_ISDIR(st.st_mode)
        if arc and not (top and is_dir):
            info = info_for(found, arc, st, epoch)
            if owner is not None:
                info.uid, info.gid = owner
            if mode is not None:
                info.mode = mode
            info.pax_headers = xattrs_of(found)
            if not add_entry(tf, found, info, st, links):
                return
            written.add(arc)
        if is_dir:
            for name in self.listdir(path):
                child = posixpath.join(path, name)
                self.add_tree(
                    tf, child, posixpath.join(target, name), owner, mode, epoch, written, links, top=False
                )
