"""Helpers for the image tests: a busybox-static rootfs tarball and `berth image` in a temp store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BERTH = str(Path(os.environ.get("VENV", REPO / ".venv")) / "bin" / "berth")
BUSYBOX = "/bin/busybox"


def busybox_rootfs(dest: Path) -> Path:
    """A tiny real base image: busybox-static, a few applet links, /etc/passwd and /tmp."""
    if not Path(BUSYBOX).exists():
        import pytest

        pytest.skip("busybox-static is not installed")
    out = dest / "busybox-rootfs.tar"
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:

        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 1_700_000_000
            tf.addfile(info)

        def add_file(name: str, data: bytes, mode: int = 0o644) -> None:
            import io

            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
            tf.addfile(info, io.BytesIO(data))

        for d in ("bin", "etc", "root", "usr", "usr/local", "usr/local/bin"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        with open(BUSYBOX, "rb") as fh:
            add_file("bin/busybox", fh.read(), 0o755)
        for applet in ("sh", "ls", "cat", "echo", "true", "id", "env"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, "busybox", 0o777, 1_700_000_000
            tf.addfile(info)
        add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
        add_file("etc/group", b"root:x:0:\napp:x:1000:\n")
    return out


def berth(data_dir: Path, *args: str, check: bool = True, input: str | None = None) -> dict[str, Any]:
    env = {**os.environ, "BERTH_DATA_DIR": str(data_dir)}
    proc = subprocess.run([BERTH, *args, "--json"], capture_output=True, text=True, env=env, input=input)
    try:
        out: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"berth {args} printed no JSON: {proc.stdout!r} {proc.stderr!r}") from None
    out["exit_code"] = proc.returncode
    if check and proc.returncode != 0:
        raise AssertionError(f"berth {' '.join(args)} failed: {out.get('error')}")
    return out


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if shutil.which("skopeo") is None:
        import pytest

        pytest.skip("skopeo is not installed")
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed: {proc.stderr}")
    return proc
