"""Containers across a reboot of their host: berth-restore.service brings back what should run."""

from __future__ import annotations

import pytest
from labkit import Lab, berth
from rootfs import ROOTFS, build_rootfs

pytestmark = pytest.mark.lab


def test_system_info_says_what_the_host_enforces(lab: Lab) -> None:
    info = lab.berth(lab.hosts[0], "system", "info")["data"]
    assert info["cgroup_mode"].startswith("hybrid")  # the namespace lab on these machines
    assert "MemoryHigh" in info["not_enforced"] and info["overlayfs"] is True
    assert {"memory", "pids", "cpu"} <= set(info["controllers"])


def test_a_reboot_brings_back_restart_always_containers_only(lab: Lab) -> None:
    host = lab.hosts[-1]
    build_rootfs(lab, host)
    first = lab.berth(host, "system", "install")
    again = lab.berth(host, "system", "install")
    assert again["changed"] is False and first["data"]["unit"] == "berth-restore.service"
    lab.berth(
        host, "run", "-d", "--name", "always", "--restart", "always", "--rootfs", ROOTFS, "sleep", "600"
    )
    lab.berth(host, "run", "-d", "--name", "once", "--rootfs", ROOTFS, "sleep", "600")
    lab.run(host, ["sh", "-c", "echo kept > /var/lib/berth/containers/always/upper/marker"])
    try:
        berth("lab", "reboot", host, "--name", lab.name)
        lab.refresh()
        states = {c["name"]: c for c in lab.berth(host, "ps", "-a")["data"]}
        assert states["always"]["status"] == "running"
        assert states["once"]["status"] == "exited"
        # The restored container kept its writable layer.
        out = lab.run(host, ["berth", "exec", "always", "cat", "/marker"]).stdout
        assert out.strip() == "kept"
        assert lab.berth(host, "restore")["changed"] is False  # nothing left to do
    finally:
        lab.run(host, ["berth", "rm", "-f", "always", "once"], check=False)
