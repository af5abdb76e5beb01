"""Shared by the Ansible-side benchmarks (modules.py, fleet.py): a lab, its app, timed plays.

The lab is booted with the tests' own plumbing (tests/integration/labkit.py), reached over SSH
with the inventory `berth lab up` writes, exactly as the integration tests and users do; the
app images are the deployment tests' busybox httpd (tests/integration/deploy_helpers.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import REPO, VENV

sys.path.insert(0, str(REPO / "tests" / "integration"))


def load() -> float:
    """The machine's 1-minute load average: said with every figure (the machine is shared)."""
    return round(os.getloadavg()[0], 2)


def compile_runtime() -> None:
    """Lab hosts see the editable tree read-only, where Python cannot cache bytecode: an
    installed package has it compiled, so compile it first."""
    subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "compileall", "-q", str(REPO / "runtime" / "berth")],
        check=False,
        stdout=subprocess.DEVNULL,
    )


@contextmanager
def lab_of(name: str, hosts: int) -> Iterator[Any]:
    """A booted lab with an ANSIBLE_COLLECTIONS_PATH in which berth.fleet is this checkout."""
    from labkit import berth, boot_lab

    compile_runtime()
    berth("lab", "down", "--name", name, check=False)
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        root = Path(tmp) / "collections"
        (root / "ansible_collections" / "berth").mkdir(parents=True)
        (root / "ansible_collections" / "berth" / "fleet").symlink_to(REPO)
        try:
            lab = boot_lab(name, hosts)
            lab.collections_path = str(root)
            lab.workdir = Path(tmp)
            yield lab
        finally:
            berth("lab", "down", "--name", name, check=False)


def prepare_app(lab: Any, hosts: list[str]) -> None:
    """The deployment tests' images app:1..3 on every host, built in parallel."""
    from deploy_helpers import prepare_host

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda h: prepare_host(lab, h), hosts))


def playbook(lab: Any, path: Path, *extra: str, forks: int = 10, env: dict[str, str] | None = None) -> float:
    """Run one ansible-playbook as a user would; its wall time in seconds."""
    env = {**lab.ansible_env(), "ANSIBLE_FORKS": str(forks), **(env or {})}
    start = time.perf_counter()
    proc = subprocess.run(
        [str(VENV / "bin" / "ansible-playbook"), "-i", lab.inventory, str(path), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(
            f"ansible-playbook {path.name} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
        )
    return elapsed


def write_play(path: Path, plays: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(plays))  # JSON is YAML
    return path


def alternate(sides: list[str], rounds: int, warmup: int, measure: Any) -> dict[str, list[Any]]:
    """Every round runs every side once, in an order rotated by one each round; warm-up dropped."""
    samples: dict[str, list[Any]] = {n: [] for n in sides}
    for i in range(warmup + rounds):
        k = i % len(sides)
        for name in sides[k:] + sides[:k]:
            value = measure(name, i)
            if i >= warmup:
                samples[name].append(value)
    return samples
