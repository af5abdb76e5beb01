"""`make demo` end to end: scripts/demo.sh boots its own lab, tells the whole story, leaves nothing.

It boots a lab of its own (d<pid>, not the session's), builds and pushes app:1..3 to a registry it
starts on the lab's bridge, rolls v1 and v2 out, fails v3 on the canary, rolls back to v1, and
tears everything down; the final table must say the fleet serves v1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit import REPO, VENV, berth

pytestmark = pytest.mark.lab


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """The demo's TMPDIR: short, so its ssh sockets live in its temp dir (paths < 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="bd-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(1800)
def test_demo_tells_the_story_and_leaves_nothing(short_tmp: Path) -> None:
    name = f"d{os.getpid() % 10_000_000}"
    tmp = short_tmp
    env = {**os.environ, "VENV": str(VENV), "BERTH_DEMO_LAB": name, "TMPDIR": str(tmp)}
    proc = subprocess.run(
        [str(REPO / "scripts" / "demo.sh")], capture_output=True, text=True, env=env, timeout=1700
    )
    out = proc.stdout
    assert proc.returncode == 0, f"{out[-4000:]}\n{proc.stderr[-4000:]}"

    # The story, step by step: v1 and v2 everywhere, v3 stopped on the canary, back to v1.
    summary = out.split("Summary: every host, every step", 1)[1]
    assert "Fleet now: all 3 hosts serve v1." in summary
    rows = [line.split() for line in summary.splitlines() if f"{name}-" in line]
    assert [r for r in rows if "failed" in r] and sum("not started" in " ".join(r) for r in rows) == 2
    assert sum(1 for r in rows if "2 -> 1" in " ".join(r)) == 3  # the rollback moved every host
    assert "0 failed, answers seen: v1, v2" in out  # no request failed while v2 rolled out
    assert out.count("= pushed digest") == 9 and "PUSHED DIGEST" not in out

    # Nothing left: lab, bridge, registry and ssh masters (their command lines name the temp dir),
    # the temp dir itself.
    status = berth("lab", "status", "--name", name, check=False)
    assert status["error"]["kind"] == "not-found", status
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"bbr-{name}:" not in links and f"bv-{name}-" not in links
    assert not processes_mentioning(str(tmp)), processes_mentioning(str(tmp))
    assert list(tmp.iterdir()) == []
