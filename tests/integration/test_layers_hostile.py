"""The hostile layer corpus against Berth's extractor: a refusal or a safe result, and nothing
written outside the layer (the whole sandbox tree around it is compared before and after).

Runs on the machine as root in a temp dir on a real filesystem (mknod, trusted.* xattrs); the
million-entry variant is marked slow.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_layers import Case, cases

from berth.errors import InvalidInput
from berth.images.extract import ExtractPolicy, extract_layer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="layer extraction needs root (mknod, xattrs)")


def snapshot(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every path under root with its type/mode, owner, size and content hash (no following)."""
    out = {}
    for dirpath, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(dirpath) / name
            st = os.lstat(path)
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(path)
            out[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_size, digest)
    return out


@pytest.fixture
def sandbox() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="berth-hostile-", dir="/tmp") as d:
        root = Path(d)
        victim = root / "victim"
        victim.mkdir()
        (victim / "file").write_text("original\n")
        (victim / "passwd").write_text("root:x:0:0\n")
        yield root


def _ids(case: Case) -> str:
    return case.name


def run_case(case: Case, sandbox: Path) -> None:
    victim = str(sandbox / "victim")
    policy = ExtractPolicy(**case.policy)
    before = snapshot(sandbox)
    layers = case.layers(victim)
    dests = []
    error: InvalidInput | None = None
    report = None
    for i, data in enumerate(layers):
        dest = sandbox / ("layer" if case.same_dir else f"layer{i}")
        dest.mkdir(exist_ok=True)
        dests.append(dest)
        try:
            report = extract_layer(io.BytesIO(data), dest, policy, compressed_size=len(data))
        except InvalidInput as exc:
            error = exc
            break
    after = snapshot(sandbox)
    outside = {
        k: v for k, v in after.items() if not any(k == d.name or k.startswith(d.name + "/") for d in dests)
    }
    expected_outside = {
        k: v for k, v in before.items() if not any(k == d.name or k.startswith(d.name + "/") for d in dests)
    }
    assert outside == expected_outside, f"{case.name}: something outside the layer changed"
    if case.expect == "refuse":
        assert error is not None, f"{case.name}: expected a refusal, extraction succeeded"
        assert error.message
    else:
        assert error is None, f"{case.name}: expected a safe result, got {error and error.message}"
        if case.check is not None:
            case.check(dests[-1], report)


@pytest.mark.parametrize("case", [c for c in cases() if not c.slow], ids=_ids)
def test_hostile_layer(case: Case, sandbox: Path) -> None:
    run_case(case, sandbox)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in cases() if c.slow], ids=_ids)
def test_hostile_layer_slow(case: Case, sandbox: Path) -> None:
    run_case(case, sandbox)
