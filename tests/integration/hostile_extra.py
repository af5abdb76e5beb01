"""More of the hostile layer corpus (issue 8, part 1): containerd's archive breakout tests
(pkg/archive/tar_test.go, TestBreakouts) ported one for one, and whiteout edge cases.

Cases use the `Case` model of hostile_layers.py. containerd applies a layer over existing
content (`apply` in its tests); here that content is a first layer applied into the same
directory (`same_dir`), the worst case for a layer applier. containerd's validators become
`check`s; a case Berth refuses where containerd accepts is marked "refuse" with the reason.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from hostile_layers import Case, Check, T

U = "unbroken"


def _lstat_in(layer: Path, rel: str) -> os.stat_result:
    """lstat of `rel` with its parents resolved inside the layer (as the extractor resolves them)."""
    from berth import kernel

    parent, _, base = rel.strip("/").rpartition("/")
    root = os.open(layer, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = kernel.open_in_root(root, parent or ".", os.O_PATH | os.O_DIRECTORY)
        try:
            return os.stat(base, dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)
    finally:
        os.close(root)


def _link_in_layer(rel: str) -> Check:
    def check(layer: Path, _: Any) -> None:
        assert stat.S_ISLNK(_lstat_in(layer, rel).st_mode), rel

    return check


def _value(rel: str, content: bytes) -> Check:
    def check(layer: Path, _: Any) -> None:
        assert (layer / rel).read_bytes() == content, (rel, (layer / rel).read_bytes())

    return check


def _same(a: str, b: str) -> Check:
    """Both names are one inode inside the layer (containerd's sameFile)."""

    def check(layer: Path, _: Any) -> None:
        sa, sb = _lstat_in(layer, a), _lstat_in(layer, b)
        assert (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino), (a, b)

    return check


def _not_same(a: str, b: str) -> Check:
    def check(layer: Path, _: Any) -> None:
        sa, sb = _lstat_in(layer, a), _lstat_in(layer, b)
        assert (sa.st_dev, sa.st_ino) != (sb.st_dev, sb.st_ino), (a, b)

    return check


def _absent(rel: str) -> Check:
    def check(layer: Path, _: Any) -> None:
        assert not os.path.lexists(layer / rel), rel

    return check


def _whiteout(rel: str) -> Check:
    def check(layer: Path, _: Any) -> None:
        st = os.lstat(layer / rel)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, rel

    return check


def _all(*checks: Check) -> Check:
    def check(layer: Path, report: Any) -> None:
        for c in checks:
            c(layer, report)

    return check


def _base_passwd() -> T:
    return T().dir("etc", mode=0o770).file("etc/passwd", b"inside")


def _cd(name: str, layers: Any, expect: str, check: Check | None = None, same_dir: bool = False) -> Case:
    return Case(
        f"containerd-{name}",
        layers,
        expect,
        f"containerd TestBreakouts/{name}",
        check=check,
        same_dir=same_dir,
    )


def containerd_cases() -> list[Case]:
    return [
        _cd(
            "SymlinkAbsolute",
            lambda v: [
                T().dir("etc").symlink("localetc", "/etc").file("/localetc/unbroken", U.encode()).bytes()
            ],
            "safe",
            _value("etc/unbroken", U.encode()),
        ),
        _cd(
            "SymlinkUpAndOut",
            lambda v: [
                T()
                .dir("etc")
                .dir("dummy")
                .symlink("localetc", "/dummy/../etc")
                .file("/localetc/unbroken", U.encode())
                .bytes()
            ],
            "safe",
            _value("etc/unbroken", U.encode()),
        ),
        _cd(
            "SymlinkMultipleAbsolute",
            lambda v: [
                T()
                .dir("etc")
                .dir("dummy")
                .symlink("/dummy/etc", "/etc")
                .symlink("localetc", "/dummy/etc")
                .file("/dummy/etc/unbroken", U.encode())
                .bytes()
            ],
            "safe",
            _value("etc/unbroken", U.encode()),
        ),
        _cd(
            "SymlinkMultipleRelative",
            lambda v: [
                T()
                .dir("etc")
                .dir("dummy")
                .symlink("/dummy/etc", "/etc")
                .symlink("localetc", "./dummy/etc")
                .file("/dummy/etc/unbroken", U.encode())
                .bytes()
            ],
            "safe",
            _value("etc/unbroken", U.encode()),
        ),
        _cd(
            "SymlinkEmptyFile",
            lambda v: [
                T()
                .dir("etc")
                .file("etc/emptied", b"notempty")
                .symlink("localetc", "/etc")
                .file("/localetc/emptied", b"")
                .bytes()
            ],
            "safe",
            _value("etc/emptied", b""),
        ),
        _cd(
            "HardlinkRelative",
            lambda v: [
                _base_passwd()
                .dir("breakouts")
                .symlink("breakouts/d1", "../../etc")
                .hardlink("breakouts/mypasswd", "/breakouts/d1/passwd")
                .bytes()
            ],
            "safe",
            _same("/breakouts/mypasswd", "/etc/passwd"),
        ),
        _cd(
            "HardlinkDownAndOut",
            lambda v: [
                _base_passwd()
                .dir("breakouts")
                .dir("downandout")
                .symlink("breakouts/d1", "../downandout/../../etc")
                .hardlink("breakouts/mypasswd", "/breakouts/d1/passwd")
                .bytes()
            ],
            "safe",
            _same("/breakouts/mypasswd", "/etc/passwd"),
        ),
        _cd(
            "HardlinkAbsolute",
            lambda v: [
                _base_passwd().symlink("localetc", "/etc").hardlink("localpasswd", "/localetc/passwd").bytes()
            ],
            "safe",
            _same("localpasswd", "/etc/passwd"),
        ),
        _cd(
            "HardlinkRelativeLong",
            lambda v: [
                _base_passwd()
                .symlink("localetc", "../../../../../../../etc")
                .hardlink("localpasswd", "/localetc/passwd")
                .bytes()
            ],
            "safe",
            _same("localpasswd", "/etc/passwd"),
        ),
        _cd(
            "HardlinkRelativeUpAndOut",
            lambda v: [
                _base_passwd()
                .symlink("localetc", "upandout/../../../etc")
                .hardlink("localpasswd", "/localetc/passwd")
                .bytes()
            ],
            # upandout/ does not exist, so the kernel cannot walk up through it: refused
            # (containerd resolves the link lexically and accepts)
            "refuse",
        ),
        _cd(
            "HardlinkDirectRelative",
            lambda v: [_base_passwd().hardlink("localpasswd", "../../../../../etc/passwd").bytes()],
            "safe",
            _same("localpasswd", "/etc/passwd"),
        ),
        _cd(
            "HardlinkDirectAbsolute",
            lambda v: [_base_passwd().hardlink("localpasswd", "/etc/passwd").bytes()],
            "safe",
            _same("localpasswd", "/etc/passwd"),
        ),
        # A symlink named ".." or "" names the layer root itself: Berth refuses to replace it.
        _cd(
            "SymlinkParentDirectory",
            lambda v: [_base_passwd().symlink("..", "/etc/").hardlink("localpasswd", "/etc/passwd").bytes()],
            "refuse",
        ),
        _cd(
            "SymlinkEmptyFilename",
            lambda v: [_base_passwd().symlink("", "/etc/").hardlink("localpasswd", "/etc/passwd").bytes()],
            "refuse",
        ),
        _cd(
            "SymlinkParentRelative",
            lambda v: [
                _base_passwd()
                .symlink("localetc/sub/..", "/etc/")
                .hardlink("/localetc/localpasswd", "/etc/passwd")
                .bytes()
            ],
            "safe",
            _same("/localetc/localpasswd", "/etc/passwd"),
        ),
        _cd(
            "SymlinkSlashEnded",
            lambda v: [
                _base_passwd()
                .dir("localetc/", mode=0o770)
                .hardlink("/localetc/localpasswd", "/etc/passwd")
                .bytes()
            ],
            "safe",
            _same("/localetc/localpasswd", "/etc/passwd"),
        ),
        _cd(
            "SymlinkOverrideDirectory",
            lambda v: [
                T().dir("etc").file("etc/passwd", b"inside").dir("localetc").bytes(),
                T().symlink("localetc", "/etc").hardlink("/localetc/localpasswd", "/etc/passwd").bytes(),
            ],
            "safe",
            _same("/localetc/localpasswd", "/etc/passwd"),
            same_dir=True,
        ),
        _cd(
            "SymlinkOverrideDirectoryRelative",
            lambda v: [
                T().dir("etc").file("etc/passwd", b"inside").dir("localetc").bytes(),
                T().symlink("localetc", "../../etc").hardlink("/localetc/localpasswd", "/etc/passwd").bytes(),
            ],
            "safe",
            _same("/localetc/localpasswd", "/etc/passwd"),
            same_dir=True,
        ),
        _cd(
            "DirectoryOverrideSymlink",
            lambda v: [
                T().dir("etc").file("etc/passwd", b"inside").symlink("localetc", "/etc").bytes(),
                T().dir("/localetc/").hardlink("/localetc/localpasswd", "/etc/passwd").bytes(),
            ],
            "safe",
            _all(
                _same("/localetc/localpasswd", "/etc/passwd"),
                lambda layer, r: os.path.isdir(layer / "localetc") or _fail(),
            ),
            same_dir=True,
        ),
        _cd(
            "DirectoryOverrideSymlinkAndHardlink",
            lambda v: [
                T()
                .dir("etc")
                .file("etc/passwd", b"inside")
                .symlink("localetc", "etc")
                .hardlink("/localetc/localpasswd", "/etc/passwd")
                .bytes(),
                T().dir("/localetc/").file("/localetc/localpasswd", b"different").bytes(),
            ],
            "safe",
            _all(_not_same("/localetc/localpasswd", "/etc/passwd"), _value("etc/passwd", b"inside")),
            same_dir=True,
        ),
        _cd(
            "WhiteoutRootParent",
            lambda v: [T().dir("etc").file("etc/passwd", b"inside").file(".wh...", b"").bytes()],
            "refuse",
        ),
        _cd(
            "WhiteoutParent",
            lambda v: [T().dir("etc").file("etc/passwd", b"inside").file("etc/.wh...", b"").bytes()],
            "refuse",
        ),
        _cd(
            "WhiteoutRoot",
            lambda v: [T().dir("etc").file("etc/passwd", b"inside").file(".wh..", b"").bytes()],
            "refuse",
        ),
        _cd(
            "WhiteoutCurrentDirectory",
            lambda v: [T().dir("etc").file("etc/passwd", b"inside").file("etc/.wh..", b"").bytes()],
            "refuse",
        ),
        _cd(
            "WhiteoutSymlink",
            lambda v: [
                T().dir("etc").file("etc/passwd", b"all users").symlink("localetc", "/etc").bytes(),
                T().file(".wh.localetc", b"").bytes(),
            ],
            "safe",
            _all(_value("etc/passwd", b"all users"), _whiteout("localetc")),
            same_dir=True,
        ),
        # A whiteout under a symlinked parent: Berth resolves the parent inside the layer, so
        # the whiteout lands on etc/whitedout, never outside (containerd: removes etc/whitedout).
        _cd(
            "WhiteoutSymlinkPath",
            lambda v: [
                T()
                .dir("etc")
                .file("etc/passwd", b"all users")
                .file("etc/whitedout", b"ahhhh")
                .symlink("localetc", "/etc")
                .bytes(),
                T().file("localetc/.wh.whitedout", b"").bytes(),
            ],
            "safe",
            _all(_value("etc/passwd", b"all users"), _whiteout("etc/whitedout")),
            same_dir=True,
        ),
        _cd(
            "WhiteoutDirectoryName",
            lambda v: [
                T().dir("etc").file("etc/passwd", b"all users").symlink("localetc", "/etc").bytes(),
                T().file(".wh.etc/somefile", b"non-empty").bytes(),
            ],
            "safe",
            _all(_value("etc/passwd", b"all users"), _value(".wh.etc/somefile", b"non-empty")),
            same_dir=True,
        ),
        _cd(
            "WhiteoutDeadSymlinkParent",
            lambda v: [
                T().dir("etc").file("etc/passwd", b"all users").symlink("localetc", "/dne").bytes(),
                T().file("localetc/.wh.etc", b"").bytes(),
            ],
            "refuse",  # the parent is a symlink to nowhere: refused (containerd: a no-op)
            same_dir=True,
        ),
        _cd(
            "WhiteoutRelativePath",
            lambda v: [
                T().dir("etc").file("etc/passwd", b"all users").symlink("localetc", "/dne").bytes(),
                T().file("dne/../.wh.etc", b"").bytes(),
            ],
            "safe",
            _whiteout("etc"),
            same_dir=True,
        ),
        _cd(
            "HardlinkSymlinkBeforeCreateTarget",
            lambda v: [
                T()
                .dir("etc", mode=0o770)
                .symlink("localpasswd", "/etc/passwd")
                .hardlink("localpasswd-dup", "localpasswd")
                .file("/etc/passwd", b"after")
                .bytes()
            ],
            "safe",
            _all(_same("localpasswd-dup", "localpasswd"), _value("etc/passwd", b"after")),
        ),
        _cd(
            "HardlinkSymlinkRelative",
            lambda v: [
                _base_passwd()
                .symlink("passwdlink", "../../../../../etc/passwd")
                .hardlink("localpasswd", "/passwdlink")
                .bytes()
            ],
            "safe",
            _same("/localpasswd", "/passwdlink"),
        ),
        _cd(
            "HardlinkSymlinkAbsolute",
            lambda v: [
                _base_passwd()
                .symlink("passwdlink", "/etc/passwd")
                .hardlink("localpasswd", "/passwdlink")
                .bytes()
            ],
            "safe",
            _same("/localpasswd", "/passwdlink"),
        ),
        _cd(
            "HardlinkSymlinkChmod",
            lambda v: [
                T()
                .symlink(f"{v}/passwd", f"{v}/file")  # victim/file exists outside, as perm400 does
                .hardlink("sketchylink", f"{v}/passwd")
                .bytes()
            ],
            "safe",
            _link_in_layer("sketchylink"),  # a link to the symlink; victim/file outside keeps its mode
        ),
    ]


def extra_cases() -> list[Case]:
    """Whiteout and name edge cases beyond hostile_layers.py."""
    return [
        Case(
            "whiteout-opaque-nested-symlink-parent",
            lambda v: [T().symlink("s", v).file("s/.wh..wh..opq", b"").bytes()],
            "refuse",
        ),
        Case(
            "whiteout-of-a-dir-then-recreate",
            lambda v: [T().dir("d").file("d/x").bytes(), T().file(".wh.d", b"").dir("d").file("d/y").bytes()],
            "safe",
            check=_all(_absent("d/x"), _value("d/y", b"pwned\n")),
            same_dir=True,
        ),
        Case(
            "whiteout-named-like-a-path",
            lambda v: [T().file(".wh.a/b", b"").bytes()],
            "safe",
            check=_value(".wh.a/b", b""),
        ),
        Case(
            "whiteout-long-name",
            lambda v: [T().file(".wh." + "n" * 251, b"").bytes()],
            "safe",
            check=_whiteout("n" * 251),
        ),
        Case("whiteout-over-name-max", lambda v: [T().file(".wh." + "n" * 256, b"").bytes()], "refuse"),
        Case("newline-in-symlink-target", lambda v: [T().symlink("l", "a\n../../x").bytes()], "safe"),
        Case(
            "deep-tree",
            lambda v: [T().file("d/" * 300 + "f").bytes()],
            "safe",
            check=_value("d/" * 300 + "f", b"pwned\n"),
        ),
    ]


def _fail() -> None:
    raise AssertionError("unexpected result")


def all_cases() -> list[Case]:
    return containerd_cases() + extra_cases()
