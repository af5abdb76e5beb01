"""Writing layers: an upper dir (overlay whiteouts) or a list of files to an OCI layer tar, and
compressing it into the store.

`dir_to_tar` is what a RUN step's upper dir goes through: 0/0 character devices become `.wh.NAME`
and `trusted.overlay.opaque=y` becomes `.wh..wh..opq`. Entries are written in sorted order with
no user or group names and (when reproducible) one fixed mtime, so the same content gives the
same diff ID.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from berth.images import mediatypes as mt
from berth.images.extract import OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX
from berth.images.store import ImageStore

KEPT_XATTRS = ("user.", "security.capability")


class _Tee:
    """Hashes the uncompressed tar (the diff ID) while writing it on to the compressor."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.h.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)


def tar_writer(out: Any) -> tarfile.TarFile:
    return tarfile.open(
        fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape"
    )


def info_for(path: Path, arcname: str, st: os.stat_result, mtime: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime) if mtime is None else min(int(st.st_mtime), mtime)
    if mtime is not None:
        info.mtime = mtime
    return info


def xattrs_of(path: Path) -> dict[str, str]:
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    for name in sorted(names):
        if name.startswith(KEPT_XATTRS):
            value = os.getxattr(path, name, follow_symlinks=False)
            out[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    return out


def add_entry(
    tf: tarfile.TarFile,
    path: Path,
    info: tarfile.TarInfo,
    st: os.stat_result,
    links: dict[tuple[int, int], str] | None = None,
    special: bool = False,
) -> bool:
    """Add the file system object at `path` (its lstat `st`) to `tf` as `info`, typed by `st`.

    The one writer of entries for layers, COPY --from and context copies. With `links`, a file
    seen before under another name becomes a hard link to it; with `special`, fifos and devices
    are kept (a RUN step's upper dir), else skipped (copies). False when nothing was added.
    """
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
    elif stat.S_ISREG(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if links is not None and st.st_nlink > 1 and key in links:
            info.type, info.linkname = tarfile.LNKTYPE, links[key]
            tf.addfile(info)
            return True
        if links is not None:
            links[key] = info.name
        info.size = st.st_size
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # still the file lstat saw
        with os.fdopen(fd, "rb") as fh:
            tf.addfile(info, fh)
        return True
    elif special and stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    elif special and (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        return False  # sockets (and, in copies, fifos and devices) are not copied
    tf.addfile(info)
    return True


def dir_to_tar(root: Path, tf: tarfile.TarFile, mtime: int | None = None, prefix: str = "") -> None:
    """Add the tree under `root` (not `root` itself) to `tf`, converting overlay whiteouts."""
    links: dict[tuple[int, int], str] = {}

    def walk(rel: str) -> None:
        here = root / rel if rel else root
        for name in sorted(os.listdir(here)):
            path = here / name
            arc = f"{prefix}{rel}/{name}" if rel else f"{prefix}{name}"
            st = os.lstat(path)
            info = info_for(path, arc, st, mtime)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                wh = tarfile.TarInfo(
                    f"{prefix}{rel}/{WHITEOUT_PREFIX}{name}" if rel else f"{prefix}{WHITEOUT_PREFIX}{name}"
                )
                wh.mtime, wh.mode, wh.uname, wh.gname = info.mtime, 0o600, "", ""
                tf.addfile(wh)
                continue
            info.pax_headers = xattrs_of(path)
            add_entry(tf, path, info, st, links, special=True)
            if stat.S_ISDIR(st.st_mode):
                try:
                    opaque = os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
                except OSError:
                    opaque = False
                if opaque:
                    marker = tarfile.TarInfo(f"{arc}/{OPAQUE_MARKER}")
                    marker.mtime, marker.mode, marker.uname, marker.gname = info.mtime, 0o600, "", ""
                    tf.addfile(marker)
                walk(f"{rel}/{name}" if rel else name)

    walk("")


def pack_layer(
    store: ImageStore, write: Callable[[tarfile.TarFile], None], compress: bool = True
) -> dict[str, Any]:
    """Write a layer tar with `write`, gzip it (mtime 0: reproducible) into the store.

    Returns the layer descriptor {digest, size, media_type, diff_id}. Caller holds the lock.
    """
    work = store.scratch_dir("pack-")
    blob = work / "layer"
    with open(blob, "wb") as raw:
        if compress:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
                tee = _Tee(gz)
                with tar_writer(tee) as tf:
                    write(tf)
        else:
            tee = _Tee(raw)
            with tar_writer(tee) as tf:
                write(tf)
    digest, size = store.ingest_file(blob)
    blob.unlink()
    work.rmdir()
    return {
        "digest": digest,
        "size": size,
        "media_type": mt.OCI_LAYER_GZIP if compress else mt.OCI_LAYER,
        "diff_id": "sha256:" + tee.h.hexdigest(),
    }


def diff_id_of(fh: BinaryIO) -> str:
    """The diff ID of a (possibly compressed) layer: sha256 of its uncompressed tar."""
    from berth.images.extract import open_decompressed

    h = hashlib.sha256()
    stream = open_decompressed(fh)
    while chunk := stream.read(1 << 20):
        h.update(chunk)
    return "sha256:" + h.hexdigest()


def media_type_by_magic(fh: BinaryIO) -> str:
    from berth.images.extract import GZIP_MAGIC, ZSTD_MAGIC

    head = fh.read(4)
    fh.seek(0)
    if head.startswith(GZIP_MAGIC):
        return mt.OCI_LAYER_GZIP
    if head == ZSTD_MAGIC:
        return mt.OCI_LAYER_ZSTD
    return mt.OCI_LAYER
