"""Fuzz the layer applier: any byte string as a (possibly compressed) layer tar.

The extractor may refuse (InvalidInput and its subclasses) but never crash with another
exception, and never write outside its target directory (checked after every input).
Run as root (owners, xattrs): `tests/fuzz/README.md`.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from _engine import main

from berth.errors import InvalidInput
from berth.images.extract import ExtractPolicy, extract_layer

# A fixed place, emptied at every start: atheris ends the process without running `finally`.
SANDBOX = Path(os.environ.get("BERTH_FUZZ_DIR") or tempfile.gettempdir() + "/berth-fuzz") / "layers-sandbox"
shutil.rmtree(SANDBOX, ignore_errors=True)
SANDBOX.mkdir(parents=True)
VICTIM = SANDBOX / "victim"
POLICY = ExtractPolicy(max_bytes=64 << 20, max_entries=10_000)


def _outside() -> list[str]:
    return sorted(
        str(p.relative_to(SANDBOX))
        for p in SANDBOX.rglob("*")
        if not str(p.relative_to(SANDBOX)).startswith("layer")
    )


def target(data: bytes) -> None:
    dest = SANDBOX / "layer"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    try:
        extract_layer(io.BytesIO(data), dest, POLICY, compressed_size=len(data))
    except InvalidInput:
        pass
    after = _outside()
    if after != BASELINE:
        raise AssertionError(f"written outside the layer: {set(after) ^ set(BASELINE)}")


def seeds() -> list[bytes]:
    from hostile_layers import cases

    out = []
    for case in cases():
        if not case.slow and "bomb" not in case.name:
            out += case.layers(str(VICTIM))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("etc/passwd")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"root\n"))
    return [*out, buf.getvalue()]


VICTIM.mkdir()
(VICTIM / "file").write_text("original\n")
BASELINE = _outside()

if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("fuzz_layers needs root (the extractor keeps owners and writes trusted xattrs)")
    try:
        sys.exit(main("layers", target, seeds()))
    finally:
        shutil.rmtree(SANDBOX, ignore_errors=True)
