"""The rest of the hostile layer corpus (hostile_extra.py: containerd's breakout tests one for one,
whiteout edge cases) against the extractor on this machine, and the whole corpus through
`berth image import` on a lab host, where the check is the host's whole writable tree.

On the lab host, a write that escaped the layer could land anywhere the host can write: its
root (an overlay: every write lands in its upper dir), /var/lib/berth (a bind mount of its data
dir) or its tmpfs mounts. All three are listed before and after each import and compared, the
store's own directory aside. Layers go in as OCI layouts (several layers stacked, as a pulled
image's are), built here and copied into the host's data dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_extra import all_cases
from hostile_layers import Case, cases
from labkit import VENV, Lab
from test_layers_hostile import run_case

from tests.reliability_plugin import recorder as _rec


@pytest.mark.skipif(os.geteuid() != 0, reason="layer extraction needs root (mknod, xattrs)")
@pytest.mark.parametrize("case", all_cases(), ids=lambda c: c.name)
def test_hostile_layer_extra(case: Case, sandbox: Path, pytestconfig: pytest.Config) -> None:
    if rec := _rec(pytestconfig):
        rec.inputs(1, "hostile layers (machine)")
        rec.guard("escape")
    run_case(case, sandbox)


@pytest.fixture
def sandbox() -> Iterator[Path]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="berth-hostile-", dir="/tmp") as d:
        root = Path(d)
        (root / "victim").mkdir()
        (root / "victim" / "file").write_text("original\n")
        (root / "victim" / "passwd").write_text("root:x:0:0\n")
        yield root


# == the whole corpus on a lab host ================================================================
VICTIM = "/var/lib/berth/hostile-victim"  # aimed at by the layers; outside the store


def oci_layout(dest: Path, layers: list[bytes]) -> None:
    """A minimal OCI image layout holding one image made of `layers` (uncompressed, or gzip)."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    descs, diff_ids = [], []
    for data in layers:
        gz = data[:2] == b"\x1f\x8b"
        zst = data[:4] == b"\x28\xb5\x2f\xfd"
        media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "+zstd" if zst else "")
        descs.append({"mediaType": media, "digest": put(data), "size": len(data)})
        raw = data
        if gz:
            import gzip

            try:
                raw = gzip.decompress(data)
            except Exception:
                raw = data
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put(config),
                "size": len(config),
            },
            "layers": descs,
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(manifest),
                "size": len(manifest),
            }
        ],
    }
    (dest / "index.json").write_text(json.dumps(index))
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, int, str]]:
    """Every path under root (not following links) with mode, size and content hash."""
    out: dict[str, tuple[int, int, str]] = {}
    for dirpath, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(rel_dir, d)) not in skip]
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel in skip:
                continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            digest = ""
            if stat.S_ISREG(st.st_mode) and st.st_size < (8 << 20):
                with open(path, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(path)
            out[rel] = (st.st_mode, st.st_size, digest)
    return out


# Inside the host, paths that change on their own (journal, systemd's state, the lab's sshd).
NOISE = ("var/log", "var/lib/systemd", "var/cache", "var/tmp/systemd-private", "etc/machine-id")


class HostTree:
    """The lab host's whole writable tree: upper dir, data dir (minus the store), tmpfs mounts."""

    def __init__(self, lab: Lab, host: str) -> None:
        state = (
            Path(os.environ.get("BERTH_LAB_STATE_DIR") or "/var/lib/berth-lab") / lab.name / "hosts" / host
        )
        self.lab, self.host = lab, host
        self.upper, self.data = state / "upper", state / "data"
        if not self.upper.is_dir() or not self.data.is_dir():
            pytest.skip(f"lab host dirs not found under {state}")

    def snapshot(self) -> dict[str, Any]:
        tmpfs = self.lab.run(
            self.host,
            ["sh", "-c", "find /tmp /run /dev/shm -xdev -printf '%p %m %s\\n' 2>/dev/null | sort"],
            check=False,
        ).stdout
        return {
            "upper": {k: v for k, v in tree(self.upper).items() if not k.startswith(NOISE)},
            "data": tree(self.data, skip=("images", "hostile-input")),
            "tmpfs": sorted(
                line for line in tmpfs.splitlines() if "/run/systemd" not in line and "/run/log" not in line
            ),
        }


def _diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key in a:
        if isinstance(a[key], dict):
            changed = {k for k in set(a[key]) | set(b[key]) if a[key].get(k) != b[key].get(k)}
        else:
            changed = set(a[key]) ^ set(b[key])
        if changed:
            out[key] = sorted(changed)[:20]
    return out


LAB_CASES = [c for c in cases() + all_cases() if not c.slow and not c.policy]
IMPORT_ALL = """
import contextlib, io, json, os, traceback
from berth.cli import main
os.chdir("/var/lib/berth/hostile-input")
for d in sorted(n for n in os.listdir(".") if os.path.isdir(n)):
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            main(["--json", "image", "import", "--format", "oci", d, "-t", "hostile:" + d])
        text = out.getvalue()
    except BaseException as exc:
        text = json.dumps({"ok": False, "error": {"kind": "crash", "message": traceback.format_exc()}})
    open(d + ".json", "w").write(text)
out = io.StringIO()
with contextlib.redirect_stdout(out):
    main(["--json", "image", "verify"])
open("verify.json", "w").write(out.getvalue())
"""


@pytest.mark.lab
def test_hostile_corpus_imported_on_a_lab_host_writes_nothing_outside_the_store(
    lab: Lab, pytestconfig: pytest.Config, tmp_path: Path
) -> None:
    rec = _rec(pytestconfig)
    rec.guard("escape")
    rec.guard("corrupt-store")
    host = lab.hosts[0]
    ht = HostTree(lab, host)
    lab.run(
        host,
        ["sh", "-c", f"mkdir -p {VICTIM} && echo original > {VICTIM}/file && echo root > {VICTIM}/passwd"],
    )
    inbox = ht.data / "hostile-input"
    shutil.rmtree(inbox, ignore_errors=True)
    inbox.mkdir()
    for i, case in enumerate(LAB_CASES):
        oci_layout(inbox / f"{i:03d}", case.layers(VICTIM))
    # One python in the host imports them all through the CLI's entry point (a process per
    # import would cost a start each); an exception other than berth's own errors is recorded.
    before = ht.snapshot()
    lab.run(host, [str(VENV / "bin" / "python"), "-c", IMPORT_ALL], timeout=600)
    after = ht.snapshot()
    if rec is not None:
        rec.inputs(len(LAB_CASES), "hostile layers (lab host, via image import)")
    changed = _diff(before, after)
    assert not changed, f"the corpus changed the host outside the store: {changed}"
    # The comparison sees what it must: a canary in each part of the tree shows up.
    lab.run(
        host, ["sh", "-c", "echo x > /etc/berth-canary; echo x > /var/lib/berth/canary; echo x > /tmp/canary"]
    )
    seen = _diff(after, ht.snapshot())
    lab.run(host, ["rm", "-f", "/etc/berth-canary", "/var/lib/berth/canary", "/tmp/canary"])
    assert set(seen) == {"upper", "data", "tmpfs"}, seen
    verify = json.loads((inbox / "verify.json").read_text())
    assert verify["ok"], verify
    outcomes = {}
    for i, case in enumerate(LAB_CASES):
        out = json.loads((inbox / f"{i:03d}.json").read_text())
        outcomes[case.name] = out["ok"] if out["ok"] else out["error"]["kind"]
    # Every refusal is a typed, clear error; a layer the extractor refuses makes no image.
    bad = {
        n: o for n, o in outcomes.items() if o is not True and o not in ("invalid-input", "integrity-error")
    }
    assert not bad, bad
    for case in LAB_CASES:
        if case.expect == "refuse" and not case.same_dir:
            assert outcomes[case.name] != True, f"{case.name}: imported, expected a refusal"  # noqa: E712
    lab.run(host, ["sh", "-c", f"berth image prune --all >/dev/null; rm -rf {VICTIM}"], check=False)
    shutil.rmtree(inbox, ignore_errors=True)
