"""The idmapped overlay root of `userns` containers, built both ways the kernel seam knows.

Linux 6.13+ takes the idmapped layers as file descriptors; older kernels (Debian 12's 6.1) take
paths, which berth's seam provides by staging the detached layers in a child's private mount
namespace. This machine's kernel does both, so both are checked here against each other: the
same view of the files, writes landing in the upper dir, nothing left in any mount table, and
more layers than one option page could name by absolute path.

Runs on the machine itself, in a private mount namespace of its own (`unshare -m`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"

WORKER = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from berth import kernel
from berth.kernel import idmap

root, way, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
layers = [os.path.join(root, "layers", f"layer-with-a-long-name-{i:04d}") for i in range(count)]
upper, work, staging, merged = (os.path.join(root, way, d) for d in ("upper", "work", "staging", "merged"))
for d in (upper, work, staging, merged):
    os.makedirs(d)
os.chown(upper, 100000, 100000)
mounts_before = open("/proc/self/mountinfo").read()
ns = idmap.userns_fd(100000, 100000, 65536)
fds = [idmap.idmapped_tree(layer, ns) for layer in reversed(layers)]  # top layer first
if way == "fd":
    overlay = idmap.overlay_fd(fds, upper, work)
else:
    overlay = idmap._overlay_fd_staged(fds, upper, work, staging)
for fd in fds:
    os.close(fd)
detached = open("/proc/self/mountinfo").read() == mounts_before
target = os.open(merged, os.O_RDONLY | os.O_DIRECTORY)
idmap.attach(overlay, target)
seen = {name: [os.stat(os.path.join(merged, name)).st_uid, open(os.path.join(merged, name)).read()]
        for name in ("base", "top")}
pid = os.fork()
if pid == 0:  # as the container's root would: join the user namespace, write a file
    kernel.setns(ns, kernel.CLONE_NEWUSER)
    idmap.become_root()
    with open(os.path.join(merged, "written"), "w") as fh:
        fh.write("w")
    os._exit(0)
os.waitpid(pid, 0)
st = os.stat(os.path.join(upper, "written"))
print(json.dumps({
    "detached": detached,
    "seen": seen,
    "upper": [st.st_uid, st.st_gid],
    "staging": {d: os.listdir(os.path.join(staging, d)) for d in os.listdir(staging)},
}))
"""


@pytest.fixture(scope="module")
def layers() -> Iterator[Path]:
    # Traversable by the mapped root (pytest's own tmp dirs are 0700), as berth's run dirs are.
    root = Path(tempfile.mkdtemp(prefix="berth-idmap-", dir="/var/tmp"))
    root.chmod(0o711)
    try:
        for i in range(300):
            layer = root / "layers" / f"layer-with-a-long-name-{i:04d}"
            layer.mkdir(parents=True)
            (layer / "top").write_text(str(i))
        (root / "layers" / "layer-with-a-long-name-0000" / "base").write_text("base")
        yield root
    finally:
        shutil.rmtree(root)


def _build(root: Path, way: str, count: int) -> dict:
    out = subprocess.run(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            sys.executable,
            "-c",
            WORKER,
            str(RUNTIME),
            str(root),
            way,
            str(count),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_both_ways_show_the_same_idmapped_root(layers: Path) -> None:
    by_fd, by_path = _build(layers, "fd", 3), _build(layers, "paths", 3)
    # Files owned by 0 on disk are the mapped root's; the top layer wins; the container root's
    # write lands in the upper dir as its host uid, never in a layer.
    expected = {"base": [100000, "base"], "top": [100000, "2"]}
    assert by_fd["seen"] == by_path["seen"] == expected
    assert by_fd["upper"] == by_path["upper"] == [100000, 100000]
    assert not any((layers / "layers").glob("*/written"))
    # Built detached: the builder's own mount table never changed; staging holds empty dirs only.
    assert by_fd["detached"] and by_path["detached"]
    assert by_path["staging"] == {"0": [], "1": [], "2": [], "root": []}


def test_paths_way_takes_more_layers_than_one_page_of_absolute_paths(layers: Path) -> None:
    absolute = ":".join(str(p) for p in (layers / "layers").iterdir())
    assert len(absolute) > 4096  # what a mount(2) option string of these paths could not hold
    built = _build(layers, "many", 300)
    assert built["seen"]["top"] == [100000, "299"]
    assert built["seen"]["base"] == [100000, "base"]
    assert len(built["staging"]) == 301 and not any(built["staging"].values())
