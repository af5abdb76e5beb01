"""Property: the layer applier reproduces any small tree exactly, `extract(pack(tree)) == tree`,
and writes nothing outside its target, whatever the entry names (`..`, absolute, `./`) and
symlink targets (up and out, absolute, dangling) look like.

Runs as root (ownership, xattrs): skipped otherwise.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from berth.errors import InvalidInput
from berth.images.extract import ExtractPolicy, extract_layer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="extraction keeps owners: needs root")

NAMES = st.sampled_from(["a", "b", "c", "etc", "bin", "x y", "n\nl", "é", ".wh-not", "..a", "-"])
LINK_TARGETS = st.sampled_from(
    [
        "a",
        "../a",
        "../../../../etc/passwd",
        "/etc/shadow",
        "/",
        ".",
        "..",
        "b/c",
        "nowhere",
        "/proc/self/root",
    ]
)


@st.composite
def trees(draw: Any) -> dict[str, tuple[Any, ...]]:
    """path -> ("dir", mode) | ("file", data, mode, uid) | ("symlink", target) | ("hardlink", path)."""
    tree: dict[str, tuple[Any, ...]] = {}
    dirs = [""]
    for _ in range(draw(st.integers(min_value=1, max_value=14))):
        parent = draw(st.sampled_from(dirs))
        path = posixpath.join(parent, draw(NAMES)) if parent else draw(NAMES)
        if path in tree:
            continue
        kind = draw(st.sampled_from(["dir", "file", "file", "symlink", "hardlink"]))
        files = [p for p, e in tree.items() if e[0] == "file"]
        if kind == "dir":
            tree[path] = ("dir", draw(st.sampled_from([0o755, 0o700, 0o1777, 0o2755])))
            dirs.append(path)
        elif kind == "symlink":
            tree[path] = ("symlink", draw(LINK_TARGETS))
        elif kind == "hardlink" and files:
            tree[path] = ("hardlink", draw(st.sampled_from(files)))
        else:
            data = draw(st.binary(max_size=600))
            tree[path] = (
                "file",
                data,
                draw(st.sampled_from([0o644, 0o600, 0o755, 0o4755])),
                draw(st.sampled_from([0, 1000])),
            )
    return tree


def _spelling(path: str, style: int) -> str:
    """The same entry name as a hostile tar might spell it; all normalise to `path`."""
    return [
        path,
        "./" + path,
        "/" + path,
        "../../" + path,
        "a/../" + path if not path.startswith("a/") else path,
    ][style]


def pack(tree: dict[str, tuple[Any, ...]], styles: list[int]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tf:
        for i, (path, entry) in enumerate(tree.items()):
            info = tarfile.TarInfo(_spelling(path, styles[i % len(styles)]))
            info.mtime = 1_600_000_000
            data = b""
            if entry[0] == "dir":
                info.type, info.mode = tarfile.DIRTYPE, entry[1]
            elif entry[0] == "file":
                data = entry[1]
                info.size, info.mode, info.uid, info.gid = len(data), entry[2], entry[3], entry[3]
            elif entry[0] == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry[1], 0o777
            else:
                info.type, info.linkname, info.mode = tarfile.LNKTYPE, entry[1], 0o644
            tf.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def listing(root: Path) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            st_ = os.lstat(p)
            rel = str(p.relative_to(root))
            if stat.S_ISDIR(st_.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st_.st_mode))
            elif stat.S_ISLNK(st_.st_mode):
                out[rel] = ("symlink", os.readlink(p))
            else:
                out[rel] = ("file", p.read_bytes(), stat.S_IMODE(st_.st_mode), st_.st_uid, st_.st_ino)
    return out


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            st_ = os.lstat(p)
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st_.st_mode) else ""
            out[str(p.relative_to(root))] = (st_.st_mode, st_.st_size, digest)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees(), styles=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=5))
def test_extract_of_pack_is_the_tree_and_nothing_leaks(
    pytestconfig: pytest.Config, tree: dict[str, tuple[Any, ...]], styles: list[int]
) -> None:
    rec = getattr(pytestconfig, "berth_reliability", None)
    if rec is not None:
        rec.inputs(1, "layer trees (hypothesis)")
    with tempfile.TemporaryDirectory(prefix="berth-prop-") as d:
        sandbox = Path(d)
        (sandbox / "victim").mkdir()
        (sandbox / "victim" / "passwd").write_text("root\n")
        dest = sandbox / "layer"
        dest.mkdir()
        before = snapshot(sandbox)
        data = pack(tree, styles)
        try:
            extract_layer(io.BytesIO(data), dest, ExtractPolicy(), compressed_size=len(data))
        except InvalidInput as exc:  # pragma: no cover - a tree of plain entries must apply
            raise AssertionError(f"refused a plain tree: {exc.message}") from exc
        after = {k: v for k, v in snapshot(sandbox).items() if not (k == "layer" or k.startswith("layer/"))}
        assert after == {k: v for k, v in before.items() if k != "layer"}, (
            "something outside the layer changed"
        )
        got = listing(dest)
        assert set(got) == set(tree), (sorted(got), sorted(tree))
        for path, entry in tree.items():
            have = got[path]
            if entry[0] in ("dir", "symlink"):
                assert have == entry, path
            elif entry[0] == "file":
                assert have[1:4] == entry[1:4], path
            else:
                target = got[entry[1]]
                assert have[0] == "file" and have[4] == target[4], f"{path} is not a hardlink of {entry[1]}"
