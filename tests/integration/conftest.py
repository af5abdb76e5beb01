"""Fixtures for tests on real systemd hosts: a session-wide `berth lab` fleet.

The fleet is booted once per test session and torn down in a finalizer, even when tests
fail; the teardown itself is checked (nothing of the lab may remain on the machine).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit import REPO, Lab, berth, boot_lab, down_stale_labs


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An ANSIBLE_COLLECTIONS_PATH in which berth.fleet is this checkout."""
    root = tmp_path_factory.mktemp("collections")
    (root / "ansible_collections" / "berth").mkdir(parents=True)
    (root / "ansible_collections" / "berth" / "fleet").symlink_to(REPO)
    return str(root)


@pytest.fixture(scope="session")
def lab(collections_path: str) -> Iterator[Lab]:
    # A name of this session's own: sessions running side by side never touch each other's lab.
    name = os.environ.get("BERTH_TEST_LAB") or f"t{os.getpid() % 100000}"
    count = int(os.environ.get("BERTH_TEST_LAB_HOSTS", "3"))
    down_stale_labs()
    fleet = boot_lab(name, count)
    fleet.collections_path = collections_path
    try:
        yield fleet
    finally:
        down = berth("lab", "down", "--name", name, check=False)
        assert down["ok"] and not down["data"]["leftovers"], down


@pytest.fixture(scope="module")
def vm_lab(collections_path: str) -> Iterator[Lab]:
    """One cgroup v2 VM host (qemu, software emulation: slow, so one host and one VM at a time).

    Module-scoped: the VM is up only while its module's tests run, not for the rest of the suite.
    """
    name = os.environ.get("BERTH_TEST_VM_LAB")
    if name:  # a VM lab someone booted by hand (`berth lab up --vm --hosts 1 --name NAME`): kept up
        data = berth("lab", "status", "--name", name)["data"]
        assert data["kind"] == "vm" and all(h["running"] for h in data["hosts"]), data
        yield Lab(
            name=name,
            inventory=data["inventory"],
            hosts=[h["name"] for h in data["hosts"]],
            addresses={h["name"]: h["address"] for h in data["hosts"]},
            pids={h["name"]: h["pid"] for h in data["hosts"]},
            collections_path=collections_path,
            kind="vm",
        )
        return
    name = f"v{os.getpid() % 100000}"
    down_stale_labs()
    fleet = boot_lab(name, 1, vm=True)
    fleet.collections_path = collections_path
    try:
        yield fleet
    finally:
        try:
            fleet.refresh()  # a reboot changes the qemu process
        except AssertionError:
            pass
        down = berth("lab", "down", "--name", name, check=False)
        assert down["ok"] and not down["data"]["leftovers"], down
        # Checked from outside too: no qemu process, no tap, no disks.
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        assert f"bt-{name}-" not in links and f"bbr-{name}:" not in links
        assert not any(Path(f"/proc/{pid}").exists() for pid in fleet.pids.values())
        assert not Path(fleet.inventory).parent.exists()


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="berth-test-") as d:
        yield Path(d)
