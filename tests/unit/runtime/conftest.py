"""Fixtures shared by the runtime's unit tests."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.private_bus import private_bus


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[str]:
    """A private dbus-daemon (session type, no policy limits): its address."""
    with private_bus(tmp_path) as address:
        yield address


class Recorder:
    """Stands in for a RUN container: records argv and binds; writes /ran (the argv) to the layer."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[tuple[str, str]], dict[str, str]]] = []
        self.scripts: dict[str, tuple[str, int]] = {}

    def __call__(
        self, layers: list[Path], upper: Path, command: list[str], env: dict[str, str], *rest: Any
    ) -> None:
        mounts = list(rest[3]) if len(rest) > 3 else []
        self.calls.append((command, mounts, env))
        for src, dst in mounts:
            for name in os.listdir(src):
                st = os.stat(Path(src) / name)
                self.scripts[f"{dst}/{name}"] = ((Path(src) / name).read_text(), stat.S_IMODE(st.st_mode))
        (upper / "ran").write_text("\0".join(command))


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An image store with a `base` image (/etc/passwd, /etc/group) and an empty build context;
    RUN steps go to a `Recorder` instead of a container."""
    from berth.images import build as build_mod
    from berth.images.rootfs import import_rootfs
    from berth.images.store import ImageStore

    monkeypatch.setattr(build_mod, "reap_orphaned_steps", lambda: ([], []))
    store = ImageStore(tmp_path / "store")
    base = tmp_path / "base.tar"
    with tarfile.open(base, "w") as tf:
        for name, data in (("etc/passwd", b"root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"),
                           ("etc/group", b"root:x:0:\napp:x:1000:\n")):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    import_rootfs(store, base, ["base"], [])
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    return {"store": store, "ctx": ctx, "run": Recorder()}
