"""Apply one layer tar to an empty directory so that nothing in it can reach outside.

String checks and `tarfile`'s data filter alone have had bypasses, so every path here is resolved
by the kernel: each parent directory is opened with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
relative to the layer's directory handle, and the last component is only ever touched with *at
calls that do not follow it (O_NOFOLLOW, unlinkat, mknodat, symlinkat, linkat without
AT_SYMLINK_FOLLOW, fchownat/utimensat with AT_SYMLINK_NOFOLLOW). A symlink planted by the layer
therefore resolves inside the layer; `..` and absolute names are clamped at its root; hardlinks can
only name files already in the layer.

OCI whiteouts become overlayfs whiteouts (a 0/0 character device) and opaque directories
(trusted.overlay.opaque=y), so the unpacked directory is directly an overlay lower dir.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from berth import kernel
from berth.errors import BerthError, InvalidInput

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
CAPS_XATTR = "security.capability"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_COPY_CHUNK = 1 << 20
# tarfile's stream buffer is sliced on every 512-byte header read: small is faster.
_TAR_BUFSIZE = 64 << 10
_MAX_CACHED_DIRS = 512
_MAX_NOTES = 50


@dataclass(frozen=True)
class ExtractPolicy:
    """What a layer may contain. The defaults are safe for image layers from anywhere.

    devices: "skip" (default: noted in the report), "refuse" or "allow" block/char devices.
    setuid / capabilities: "keep" (as docker and podman do) or "strip".
    whiteouts: convert OCI whiteouts (False when ADD unpacks a plain tar into a build).
    max_bytes / max_ratio / max_entries: the decompression-bomb limits; the ratio applies past
    `ratio_floor` bytes so small, highly compressible layers are not refused.
    """

    devices: str = "skip"
    setuid: str = "keep"
    capabilities: str = "keep"
    whiteouts: bool = True
    preserve_owners: bool = True
    max_bytes: int = 64 << 30
    max_ratio: int = 1000
    ratio_floor: int = 256 << 20
    max_entries: int = 2_000_000


@dataclass
class ExtractReport:
    diff_id: str = ""
    size: int = 0
    entries: int = 0
    opaque_root: bool = False
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.notes) < _MAX_NOTES:
            self.notes.append(text)

    def to_json(self) -> dict[str, Any]:
        return {
            "diff_id": self.diff_id,
            "size": self.size,
            "entries": self.entries,
            "opaque_root": self.opaque_root,
            "notes": self.notes,
        }


class LayerBomb(InvalidInput):
    """The layer decompresses to more than the policy allows."""


def open_decompressed(fh: BinaryIO) -> IO[bytes]:
    """A reader of the uncompressed tar in `fh`, by magic number: gzip, zstd or plain."""
    head = fh.read(4)
    fh.seek(0)
    if head.startswith(GZIP_MAGIC):
        import gzip

        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    if head == ZSTD_MAGIC:
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
    return fh


class _Counted(io.RawIOBase):
    """Hashes (the diff ID) and counts what tarfile reads, and stops a decompression bomb."""

    def __init__(self, raw: IO[bytes], compressed_size: int | None, policy: ExtractPolicy) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.total = 0
        self.limit = policy.max_bytes
        if compressed_size is not None and policy.max_ratio:
            self.limit = min(self.limit, max(policy.ratio_floor, compressed_size * policy.max_ratio))

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size if size >= 0 else _COPY_CHUNK)
        self.total += len(data)
        if self.total > self.limit:
            raise LayerBomb(
                f"layer decompresses to more than {self.limit} bytes: refused as a decompression bomb",
                limit=self.limit,
            )
        self.hash.update(data)
        return data

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(_COPY_CHUNK):
            pass


class _TarInfo(tarfile.TarInfo):
    """Remembers a corrupt header: tarfile otherwise ends the archive there without a word."""

    @classmethod
    def fromtarfile(cls, tf: tarfile.TarFile) -> _TarInfo:
        try:
            return super().fromtarfile(tf)
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError) as exc:  # type: ignore[attr-defined]
            tf.berth_bad_header = f"{exc} at offset {tf.offset}"  # type: ignore[attr-defined]
            raise


def clean_path(name: str) -> str:
    """The entry's path relative to the layer root, `..` clamped at the root ("" is the root)."""
    return posixpath.normpath("/" + name.lstrip("/"))[1:]


def extract_layer(
    src: BinaryIO, dest: Path, policy: ExtractPolicy | None = None, compressed_size: int | None = None
) -> ExtractReport:
    """Apply the (possibly compressed) layer tar `src` to the existing empty directory `dest`."""
    policy = policy or ExtractPolicy()
    reader = _Counted(open_decompressed(src), compressed_size, policy)
    report = ExtractReport()
    with _Applier(dest, policy, report) as applier:
        try:
            tf = tarfile.open(  # noqa: SIM115 - a stream over `reader`, which we own
                fileobj=reader,
                mode="r|",
                tarinfo=_TarInfo,
                encoding="utf-8",
                errors="surrogateescape",
                bufsize=_TAR_BUFSIZE,
            )
            for member in tf:
                report.entries += 1
                if report.entries > policy.max_entries:
                    raise LayerBomb(f"layer has more than {policy.max_entries} entries: refused")
                applier.apply(tf, member)
            bad = getattr(tf, "berth_bad_header", None)
            if bad:
                raise InvalidInput(f"layer is not a valid tar: corrupt header ({bad})")
            reader.drain()
        except tarfile.TarError as exc:
            raise InvalidInput(f"layer is not a valid tar: {exc}") from exc
        except EOFError as exc:
            raise InvalidInput(f"layer ends early: {exc}") from exc
        except OSError as exc:  # zlib/zstd errors surface as OSError subclasses or ZstdError
            raise InvalidInput(f"layer cannot be decompressed: {exc}") from exc
        except Exception as exc:
            if type(exc).__name__ == "ZstdError":
                raise InvalidInput(f"layer cannot be decompressed: {exc}") from exc
            raise
        applier.finish()
    report.diff_id = "sha256:" + reader.hash.hexdigest()
    report.size = reader.total
    return report


class _Applier:
    """Applies tar members one at a time under a directory handle (see the module docstring)."""

    def __init__(self, dest: Path, policy: ExtractPolicy, report: ExtractReport) -> None:
        self.policy = policy
        self.report = report
        self.root = os.open(dest, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self.dirs: dict[str, int] = {"": self.root}
        self.dir_times: list[tuple[str, int]] = []

    def __enter__(self) -> _Applier:
        return self

    def __exit__(self, *exc: object) -> None:
        self._drop_dirs()
        os.close(self.root)

    # -- directory handles ------------------------------------------------------------------
    def _drop_dirs(self) -> None:
        for path, fd in self.dirs.items():
            if path:
                os.close(fd)
        self.dirs = {"": self.root}

    def _dir(self, path: str, create: bool) -> int:
        fd = self.dirs.get(path)
        if fd is not None:
            return fd
        try:
            fd = kernel.open_in_root(self.root, path, os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            if not create:
                raise
            fd = self._make_dirs(path)
        if len(self.dirs) > _MAX_CACHED_DIRS:
            self._drop_dirs()
        self.dirs[path] = fd
        return fd

    def _make_dirs(self, path: str) -> int:
        """Create the missing parents of an entry (0755, root-owned, as `tar -x` does)."""
        fd = self.root
        parts = path.split("/")
        for i, part in enumerate(parts):
            prefix = "/".join(parts[: i + 1])
            try:
                nfd = kernel.open_in_root(self.root, prefix, os.O_PATH | os.O_DIRECTORY)
            except FileNotFoundError:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    raise InvalidInput(
                        f"layer entry under {path!r}: {prefix!r} is a symlink to nowhere"
                    ) from None
                nfd = kernel.open_in_root(self.root, prefix, os.O_PATH | os.O_DIRECTORY)
            if fd != self.root:
                os.close(fd)
            fd = nfd
        return fd

    def _clear(self, dfd: int, name: str) -> os.stat_result | None:
        """Remove whatever this layer already has at `name` (a later entry replaces it)."""
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(st.st_mode):
            self._drop_dirs_keep(dfd)
            shutil.rmtree(name, dir_fd=dfd)
        else:
            if stat.S_ISLNK(st.st_mode):
                self._drop_dirs_keep(dfd)
            os.unlink(name, dir_fd=dfd)
        return st

    def _drop_dirs_keep(self, keep: int) -> None:
        """Forget cached handles (a dir or symlink went away) but keep the one in use."""
        for path, fd in list(self.dirs.items()):
            if path and fd != keep:
                os.close(fd)
                del self.dirs[path]

    # -- members ----------------------------------------------------------------------------
    def apply(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        path = clean_path(m.name)
        try:
            self._apply(tf, m, path)
        except BerthError:
            raise
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise BerthError(f"no space left while extracting {path!r}") from exc
            raise InvalidInput(f"layer entry {m.name!r} cannot be applied: {exc.strerror}") from exc

    def _apply(self, tf: tarfile.TarFile, m: tarfile.TarInfo, path: str) -> None:
        if not path:
            if not m.isdir():
                raise InvalidInput(f"layer entry {m.name!r} would replace the layer root")
            return
        parent, base = posixpath.split(path)
        if self.policy.whiteouts and base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent, base, m)
            return
        dfd = self._dir(parent, create=True)
        if m.isdir():
            existing = self._peek(dfd, base)
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                if existing is not None:
                    self._clear(dfd, base)
                os.mkdir(base, 0o700, dir_fd=dfd)
            self._meta(dfd, base, m, is_link=False)
            self.dir_times.append((path, _ns(m.mtime)))
        elif m.isreg():
            self._clear(dfd, base)
            self._write_file(tf, m, dfd, base)
        elif m.issym():
            self._clear(dfd, base)
            os.symlink(m.linkname, base, dir_fd=dfd)
            self._meta(dfd, base, m, is_link=True)
        elif m.islnk():
            self._hardlink(m, dfd, base)
        elif m.isfifo():
            self._clear(dfd, base)
            os.mkfifo(base, 0o600, dir_fd=dfd)
            self._meta(dfd, base, m, is_link=False)
        elif m.ischr() or m.isblk():
            self._device(m, dfd, base)
        else:
            self.report.note(f"skipped {m.name!r}: unsupported tar entry type {m.type!r}")

    @staticmethod
    def _peek(dfd: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _write_file(self, tf: tarfile.TarFile, m: tarfile.TarInfo, dfd: int, base: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(base, flags, 0o600, dir_fd=dfd)
        try:
            src = tf.extractfile(m)
            if src is not None and m.size:
                with open(fd, "wb", buffering=0, closefd=False) as out:
                    shutil.copyfileobj(src, out, _COPY_CHUNK)
            self._fd_meta(fd, m)
        finally:
            os.close(fd)

    def _hardlink(self, m: tarfile.TarInfo, dfd: int, base: str) -> None:
        target = clean_path(m.linkname)
        if not target:
            raise InvalidInput(f"layer entry {m.name!r}: hardlink to the layer root")
        tparent, tbase = posixpath.split(target)
        try:
            tfd = self._dir(tparent, create=False)
            tst = os.stat(tbase, dir_fd=tfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            raise InvalidInput(
                f"layer entry {m.name!r}: hardlink target {m.linkname!r} is not in this layer"
            ) from None
        if stat.S_ISDIR(tst.st_mode):
            raise InvalidInput(f"layer entry {m.name!r}: hardlink to a directory {m.linkname!r}")
        existing = self._peek(dfd, base)
        if existing is not None and (existing.st_dev, existing.st_ino) == (tst.st_dev, tst.st_ino):
            return
        self._clear(dfd, base)
        # Re-resolve the target's dir: clearing may have dropped cached handles.
        tfd = self._dir(tparent, create=False)
        os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=dfd, follow_symlinks=False)

    def _device(self, m: tarfile.TarInfo, dfd: int, base: str) -> None:
        kind = "character" if m.ischr() else "block"
        if self.policy.devices == "refuse":
            raise InvalidInput(f"layer entry {m.name!r} is a {kind} device ({m.devmajor}:{m.devminor})")
        if self.policy.devices != "allow":
            self.report.note(f"skipped {kind} device {m.name!r} ({m.devmajor}:{m.devminor})")
            return
        self._clear(dfd, base)
        kind_bits = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
        os.mknod(base, kind_bits | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=dfd)
        self._meta(dfd, base, m, is_link=False)

    def _whiteout(self, parent: str, base: str, m: tarfile.TarInfo) -> None:
        dfd = self._dir(parent, create=True)
        if base == OPAQUE_MARKER:
            os.setxattr(f"/proc/self/fd/{dfd}", OPAQUE_XATTR, b"y")
            if not parent:
                self.report.opaque_root = True
            return
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", "..") or name.startswith(WHITEOUT_PREFIX):
            raise InvalidInput(f"layer entry {m.name!r} is an invalid whiteout")
        self._clear(dfd, name)
        os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=dfd)

    # -- metadata ---------------------------------------------------------------------------
    def _mode(self, m: tarfile.TarInfo) -> int:
        mode = m.mode & 0o7777
        if self.policy.setuid == "strip" and mode & 0o6000:
            self.report.note(f"stripped setuid/setgid from {m.name!r}")
            mode &= ~0o6000
        return mode

    def _xattrs(self, m: tarfile.TarInfo) -> Iterator[tuple[str, bytes]]:
        for key, value in m.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr.") :]
            raw = value.encode("utf-8", "surrogateescape")
            if name == CAPS_XATTR:
                if self.policy.capabilities == "strip":
                    self.report.note(f"stripped file capabilities from {m.name!r}")
                    continue
            elif not name.startswith("user."):
                # trusted.overlay.* could forge whiteouts or redirects; security.* is the host's.
                self.report.note(f"dropped xattr {name!r} of {m.name!r}")
                continue
            yield name, raw

    def _fd_meta(self, fd: int, m: tarfile.TarInfo) -> None:
        if self.policy.preserve_owners:
            os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, self._mode(m))
        for key, value in self._xattrs(m):
            os.setxattr(fd, key, value)
        ns = _ns(m.mtime)
        os.utime(fd, ns=(ns, ns))

    def _meta(self, dfd: int, base: str, m: tarfile.TarInfo, is_link: bool) -> None:
        if self.policy.preserve_owners:
            os.chown(base, m.uid, m.gid, dir_fd=dfd, follow_symlinks=False)
        if not is_link:
            os.chmod(base, self._mode(m), dir_fd=dfd, follow_symlinks=False)
        for key, value in self._xattrs(m):
            kernel.lsetxattr_at(dfd, base, key, value)
        ns = _ns(m.mtime)
        os.utime(base, ns=(ns, ns), dir_fd=dfd, follow_symlinks=False)

    def finish(self) -> None:
        """Directory mtimes last (their children changed them), deepest first; then one syncfs."""
        for path, ns in reversed(self.dir_times):
            parent, base = posixpath.split(path)
            try:
                dfd = self._dir(parent, create=False)
                st = os.stat(base, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                os.utime(base, ns=(ns, ns), dir_fd=dfd, follow_symlinks=False)
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.root)
        try:
            kernel.syncfs(fd)
        finally:
            os.close(fd)


def _ns(mtime: float) -> int:
    return int(mtime * 1_000_000_000) if isinstance(mtime, float) else int(mtime) * 1_000_000_000


@contextmanager
def opened(path: Path) -> Iterator[BinaryIO]:
    with open(path, "rb") as fh:
        yield fh
