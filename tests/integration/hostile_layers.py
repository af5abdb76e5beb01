"""The hostile layer corpus (issue 8, part 1), generated with tarfile: no checked-in binaries.

Each case builds one or more layer tars aimed at a victim directory outside the layer, and says
what Berth must do: "refuse" (a clear InvalidInput) or "safe" (extract, with nothing written
outside the layer; `check` then looks at the result). A write through a symlink resolves inside
the layer (RESOLVE_IN_ROOT): when the target does not exist there, the entry is refused. Cases
ported from containerd's archive breakout tests keep their names in `origin`.

Run as a script to write the corpus to a directory: `hostile_layers.py OUTDIR VICTIM_DIR`.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Check = Callable[[Path, Any], None]


def _info(name: str, kind: bytes = tarfile.REGTYPE, **attrs: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = attrs.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    info.mtime = attrs.pop("mtime", 1_600_000_000)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


class T:
    """A tiny tar builder: T().dir("a").file("a/b", b"x").symlink("l", "/x").bytes()."""

    def __init__(self, fmt: int = tarfile.PAX_FORMAT) -> None:
        self.buf = io.BytesIO()
        self.tf = tarfile.open(  # noqa: SIM115
            fileobj=self.buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape"
        )

    def dir(self, name: str, **attrs: Any) -> T:
        self.tf.addfile(_info(name, tarfile.DIRTYPE, **attrs))
        return self

    def file(self, name: str, data: bytes = b"pwned\n", **attrs: Any) -> T:
        info = _info(name, tarfile.REGTYPE, **attrs)
        info.size = len(data)
        self.tf.addfile(info, io.BytesIO(data))
        return self

    def symlink(self, name: str, target: str, **attrs: Any) -> T:
        self.tf.addfile(_info(name, tarfile.SYMTYPE, linkname=target, mode=0o777, **attrs))
        return self

    def hardlink(self, name: str, target: str) -> T:
        self.tf.addfile(_info(name, tarfile.LNKTYPE, linkname=target))
        return self

    def device(self, name: str, major: int, minor: int, kind: bytes = tarfile.CHRTYPE) -> T:
        self.tf.addfile(_info(name, kind, devmajor=major, devminor=minor, mode=0o666))
        return self

    def bytes(self) -> bytes:
        self.tf.close()
        return self.buf.getvalue()


@dataclass
class Case:
    name: str
    layers: Callable[[str], list[bytes]]  # victim dir -> layer tars, applied in order
    expect: str  # "refuse" or "safe"
    origin: str = ""
    policy: dict[str, Any] = field(default_factory=dict)
    check: Check | None = None
    same_dir: bool = False  # apply all layers into one directory (worst case for stacking)
    slow: bool = False


def _exists(rel: str, kind: int | None = None) -> Check:
    def check(layer: Path, _: Any) -> None:
        st = os.lstat(layer / rel)
        if kind is not None:
            assert stat.S_IFMT(st.st_mode) == kind, (rel, oct(st.st_mode))

    return check


def _absent(rel: str) -> Check:
    def check(layer: Path, _: Any) -> None:
        assert not os.path.lexists(layer / rel), rel

    return check


def _mode(rel: str, mode: int) -> Check:
    def check(layer: Path, _: Any) -> None:
        assert stat.S_IMODE(os.lstat(layer / rel).st_mode) == mode, oct(os.lstat(layer / rel).st_mode)

    return check


def _xattr(rel: str, key: str, present: bool) -> Check:
    def check(layer: Path, _: Any) -> None:
        names = os.listxattr(layer / rel, follow_symlinks=False)
        assert (key in names) == present, names

    return check


def _all(*checks: Check) -> Check:
    def check(layer: Path, report: Any) -> None:
        for c in checks:
            c(layer, report)

    return check


def _whiteout(rel: str) -> Check:
    def check(layer: Path, _: Any) -> None:
        st = os.lstat(layer / rel)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0

    return check


def _opaque_root(layer: Path, report: Any) -> None:
    assert report.opaque_root
    assert os.getxattr(layer, "trusted.overlay.opaque") == b"y"


def _opaque_dir(layer: Path, report: Any) -> None:
    assert os.getxattr(layer / "d", "trusted.overlay.opaque") == b"y"


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def _zeros_tar(size: int, name: str = "zeros") -> bytes:
    """A tar with one file of `size` zero bytes, streamed (never all in memory as a str)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = _info(name)
        info.size = size
        tf.addfile(info, _Zeros(size))
    return buf.getvalue()


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


def _zstd_bomb(size: int) -> bytes:
    import zstandard

    cctx = zstandard.ZstdCompressor(level=3)
    out = io.BytesIO()
    with cctx.stream_writer(out, closefd=False) as w:
        header = _info("bomb")
        header.size = size
        w.write(header.tobuf(tarfile.PAX_FORMAT))
        block = bytes(1 << 20)
        left = size
        while left:
            n = min(left, len(block))
            w.write(block[:n])
            left -= n
        w.write(bytes(1024))
    return out.getvalue()


def _longer_than_header() -> bytes:
    data = T().file("short", b"0123456789").file("next", b"ok").bytes()
    # Replace the first file's 512-byte data block by 600 bytes: the next header is misaligned.
    first_data = data.index(b"0123456789")
    return data[:first_data] + b"A" * 600 + data[first_data + 512 :]


def _truncated() -> bytes:
    data = T().file("big", b"x" * 5000).bytes()
    return data[: 512 + 1000]


def _many(n: int) -> bytes:
    t = T(tarfile.GNU_FORMAT)
    for i in range(n):
        t.file(f"d{i % 100}/f{i}", b"")
    return t.bytes()


def cases() -> list[Case]:
    return [
        Case(
            "dotdot-file",
            lambda v: [T().file("../../../escape-dotdot").bytes()],
            "safe",
            "containerd: relative path escape",
            check=_exists("escape-dotdot", stat.S_IFREG),
        ),
        Case(
            "absolute-file",
            lambda v: [T().file(f"{v}/abs-file").bytes()],
            "safe",
            "containerd: absolute path",
        ),
        Case(
            "symlink-up-and-out",
            lambda v: [T().symlink("up", "../../../../../../../.." + v).file("up/pwned").bytes()],
            "refuse",
            "containerd: symlink up and out",
        ),
        Case(
            "symlink-absolute-then-write",
            lambda v: [T().symlink("etc", v).file("etc/passwd").bytes()],
            "refuse",
            "containerd: symlink absolute",
        ),
        Case(
            "symlink-chain-out",
            lambda v: [T().symlink("a", "b").symlink("b", "../../../.." + v).file("a/chained").bytes()],
            "refuse",
            "containerd: symlink chain",
        ),
        Case(
            "symlink-dotdot-name",
            lambda v: [T().symlink("..", v).file("../x").bytes()],
            "refuse",
            "containerd: .. as a symlink name",
        ),
        Case(
            "hardlink-absolute-out",
            lambda v: [T().hardlink("h", f"{v}/file").bytes()],
            "refuse",
            "containerd: absolute hardlink out",
        ),
        Case(
            "hardlink-relative-out",
            lambda v: [T().hardlink("h", f"../../../../..{v}/file").bytes()],
            "refuse",
            "containerd: relative hardlink out",
        ),
        Case(
            "hardlink-through-symlink-dir",
            lambda v: [T().symlink("s", v).hardlink("h", "s/file").bytes()],
            "refuse",
            "containerd: hardlink via symlinked parent",
        ),
        Case(
            "hardlink-then-chmod",
            lambda v: [
                T().symlink("s", f"{v}/file").hardlink("h", "s").file("h", b"new", mode=0o777).bytes()
            ],
            "safe",
            "containerd: hardlink to symlink then chmod",
            check=_mode("h", 0o777),
        ),
        Case(
            "dir-over-symlink",
            lambda v: [T().symlink("d", v).dir("d").file("d/in-dir").bytes()],
            "safe",
            "containerd: directory over symlink",
            check=_exists("d/in-dir", stat.S_IFREG),
        ),
        Case(
            "file-over-dir-with-contents",
            lambda v: [T().dir("x").file("x/y").file("x", b"file").bytes()],
            "safe",
            check=_exists("x", stat.S_IFREG),
        ),
        Case(
            "symlink-loop-parent",
            lambda v: [T().symlink("a", "b").symlink("b", "a").file("a/f").bytes()],
            "refuse",
        ),
        Case(
            "dangling-symlink-parent",
            lambda v: [T().symlink("a", "/nowhere/deep").file("a/f").bytes()],
            "refuse",
        ),
        Case(
            "two-archive-symlink",
            lambda v: [T().symlink("link", v).bytes(), T().file("link/pwned").bytes()],
            "safe",
            "two-archive symlink plant (stacked, separate dirs)",
        ),
        Case(
            "two-archive-symlink-same-dir",
            lambda v: [T().symlink("link", v).bytes(), T().file("link/pwned").bytes()],
            "refuse",
            "two-archive symlink plant (applied into one dir)",
            same_dir=True,
        ),
        Case("whiteout-empty", lambda v: [T().file(".wh.", b"").bytes()], "refuse"),
        Case("whiteout-dot", lambda v: [T().file(".wh..", b"").bytes()], "refuse"),
        Case("whiteout-dotdot", lambda v: [T().file(".wh...", b"").bytes()], "refuse"),
        Case("whiteout-dot-nested", lambda v: [T().dir("etc").file("etc/.wh..", b"").bytes()], "refuse"),
        Case("whiteout-reserved", lambda v: [T().file(".wh..wh.plnk", b"").bytes()], "refuse"),
        Case(
            "whiteout-ok",
            lambda v: [T().dir("etc").file("etc/.wh.passwd", b"").bytes()],
            "safe",
            check=_whiteout("etc/passwd"),
        ),
        Case("opaque-root", lambda v: [T().file(".wh..wh..opq", b"").bytes()], "safe", check=_opaque_root),
        Case(
            "opaque-dir",
            lambda v: [T().dir("d").file("d/.wh..wh..opq", b"").bytes()],
            "safe",
            check=_opaque_dir,
        ),
        Case(
            "whiteout-through-symlinked-parent",
            lambda v: [T().symlink("s", v).file("s/.wh.file", b"").bytes()],
            "refuse",
        ),
        Case(
            "forged-overlay-xattr",
            lambda v: [_pax_xattr("f", "trusted.overlay.opaque", "y")],
            "safe",
            check=_xattr("f", "trusted.overlay.opaque", False),
        ),
        Case(
            "device-skip",
            lambda v: [T().device("null", 1, 3).device("sda", 8, 0, tarfile.BLKTYPE).bytes()],
            "safe",
            check=_all(_absent("null"), _absent("sda")),
        ),
        Case(
            "device-refuse",
            lambda v: [T().device("null", 1, 3).bytes()],
            "refuse",
            policy={"devices": "refuse"},
        ),
        Case(
            "device-allow",
            lambda v: [T().device("null", 1, 3).bytes()],
            "safe",
            policy={"devices": "allow"},
            check=_exists("null", stat.S_IFCHR),
        ),
        Case("fifo", lambda v: [_fifo()], "safe", check=_exists("p", stat.S_IFIFO)),
        Case(
            "setuid-keep", lambda v: [T().file("su", mode=0o4755).bytes()], "safe", check=_mode("su", 0o4755)
        ),
        Case(
            "setuid-strip",
            lambda v: [T().file("su", mode=0o6755).bytes()],
            "safe",
            policy={"setuid": "strip"},
            check=_mode("su", 0o755),
        ),
        Case(
            "caps-keep",
            lambda v: [_pax_xattr("capped", "security.capability", _CAPS)],
            "safe",
            check=_xattr("capped", "security.capability", True),
        ),
        Case(
            "caps-strip",
            lambda v: [_pax_xattr("capped", "security.capability", _CAPS)],
            "safe",
            policy={"capabilities": "strip"},
            check=_xattr("capped", "security.capability", False),
        ),
        Case(
            "gzip-bomb-limit", lambda v: [_gz(_zeros_tar(48 << 20))], "refuse", policy={"max_bytes": 16 << 20}
        ),
        Case("zstd-bomb-ratio", lambda v: [_zstd_bomb(1 << 30)], "refuse"),
        Case("file-longer-than-header", lambda v: [_longer_than_header()], "refuse"),
        Case("truncated-file", lambda v: [_truncated()], "refuse"),
        Case("entry-limit", lambda v: [_many(1001)], "refuse", policy={"max_entries": 1000}),
        Case("million-entries", lambda v: [_many(1_000_001)], "refuse", slow=True),
        Case("path-over-path-max", lambda v: [T().file("a/" * 2100 + "f").bytes()], "refuse"),
        Case("component-over-name-max", lambda v: [T().file("n" * 300).bytes()], "refuse"),
        Case(
            "newline-name", lambda v: [T().file("line\nbreak").bytes()], "safe", check=_exists("line\nbreak")
        ),
        Case(
            "invalid-utf8-name",
            lambda v: [T(tarfile.GNU_FORMAT).file("bad-\udcff-name").bytes()],
            "safe",
            check=lambda layer, r: (
                None if os.path.lexists(os.path.join(os.fsencode(layer), b"bad-\xff-name")) else _fail()
            ),
        ),
        Case(
            "hardlink-inside-ok",
            lambda v: [T().file("a", b"data").hardlink("b", "a").bytes()],
            "safe",
            check=lambda layer, r: (
                None if os.stat(layer / "a").st_ino == os.stat(layer / "b").st_ino else _fail()
            ),
        ),
        Case("not-a-tar", lambda v: [b"\x00garbage" * 100], "refuse"),
        Case("corrupt-gzip", lambda v: [_gz(T().file("x").bytes())[:40] + b"\xff" * 40], "refuse"),
    ]


_CAPS = "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"


def _pax_xattr(name: str, key: str, value: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, errors="surrogateescape") as tf:
        info = _info(name)
        info.pax_headers = {f"SCHILY.xattr.{key}": value}
        tf.addfile(info, io.BytesIO(b""))
    return buf.getvalue()


def _fifo() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(_info("p", tarfile.FIFOTYPE))
    return buf.getvalue()


def _fail() -> None:
    raise AssertionError("unexpected result")


def write_corpus(out: Path, victim: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for case in cases():
        if case.slow:
            continue
        for i, data in enumerate(case.layers(victim)):
            path = out / f"{case.name}.{i}.tar"
            path.write_bytes(data)
            written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover
    for p in write_corpus(Path(sys.argv[1]), sys.argv[2]):
        print(p)
