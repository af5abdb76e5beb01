"""Slices: the three ways of sharing a host, on real systemd cgroups, nested and changed live."""

from __future__ import annotations

import json

import pytest
from labkit import Lab
from rootfs import ROOTFS, build_rootfs

pytestmark = pytest.mark.lab


def apply(lab: Lab, host: str, doc: dict, check: bool = True) -> dict:  # type: ignore[type-arg]
    return lab.berth(host, "slice", "apply", "-f", "-", input=json.dumps(doc), check=check)


def test_slices_nest_limit_weigh_and_change_live(lab: Lab) -> None:
    host = lab.hosts[1]
    build_rootfs(lab, host)
    cg = "/sys/fs/cgroup"
    try:
        first = apply(lab, host, {"name": "shop", "resources": {"cpu_weight": 300, "memory_max": "256M"}})
        assert first["changed"] and [a["action"] for a in first["actions"]] == ["start"]
        assert apply(lab, host, {"name": "shop", "resources": {"cpu_weight": 300, "memory_max": 268435456}})[
            "changed"] is False  # fmt: skip
        apply(lab, host, {"name": "shop-api", "resources": {"cpu_quota": "30%", "tasks_max": 64}})
        lab.berth(
            host, "run", "-d", "--name", "api1", "--slice", "shop-api", "--rootfs", ROOTFS, "sleep", "600"
        )
        api = "berth.slice/berth-shop.slice/berth-shop-api.slice"
        assert (
            lab.run(host, ["cat", f"{cg}/cpu/berth.slice/berth-shop.slice/cpu.shares"]).stdout.strip()
            == "3072"
        )
        assert lab.run(host, ["cat", f"{cg}/cpu/{api}/cpu.cfs_quota_us"]).stdout.strip() == "30000"
        assert lab.run(host, ["cat", f"{cg}/pids/{api}/pids.max"]).stdout.strip() == "64"
        assert (
            lab.run(host, ["test", "-d", f"{cg}/pids/{api}/berth-api1.service"], check=False).returncode == 0
        )
        # Live change: the limit moves, the container keeps running.
        pid = lab.berth(host, "inspect", "api1")["data"][0]["pid"]
        changed = apply(lab, host, {"name": "shop-api", "resources": {"cpu_quota": "60%", "tasks_max": 64}})
        assert [a["action"] for a in changed["actions"]] == ["update"]
        assert lab.run(host, ["cat", f"{cg}/cpu/{api}/cpu.cfs_quota_us"]).stdout.strip() == "60000"
        assert lab.berth(host, "inspect", "api1")["data"][0]["pid"] == pid
        # What this host cannot enforce is said, on every run.
        pinned = apply(
            lab, host, {"name": "shop", "resources": {"cpu_weight": 300, "memory_max": "256M", "cpus": "0"}}
        )
        assert any("cpuset" in w and "not enforced" in w for w in pinned["warnings"])
        # A slice in use is not removed.
        busy = lab.berth(host, "slice", "rm", "shop", check=False)
        assert busy["error"]["kind"] == "conflict" and "container api1" in busy["error"]["message"]
    finally:
        lab.run(host, ["berth", "rm", "-f", "api1"], check=False)
        lab.run(host, ["berth", "slice", "rm", "shop-api"], check=False)
        lab.run(host, ["berth", "slice", "rm", "shop"], check=False)
    assert lab.berth(host, "slice", "ls")["data"] == []
    assert (
        lab.run(host, ["test", "-e", f"{cg}/cpu/berth.slice/berth-shop.slice"], check=False).returncode == 1
    )


def test_check_mode_and_bad_slices(lab: Lab) -> None:
    host = lab.hosts[1]
    planned = lab.berth(host, "slice", "apply", "--check", "-f", "-", input=json.dumps({"name": "plan"}))
    assert planned["changed"] and lab.berth(host, "slice", "ls")["data"] == []
    assert (
        lab.run(host, ["systemctl", "is-active", "berth-plan.slice"], check=False).stdout.strip() != "active"
    )
    for doc, words in (
        ({"name": "Bad Name"}, "invalid slice name"),
        ({"name": "ok", "resources": {"memory_max": "12 potatoes"}}, "memory_max"),
        ({"name": "ok", "resources": {"bogus": 1}}, "unknown resource"),
        ({"name": "ok", "state": "maybe"}, "state"),
    ):
        out = apply(lab, host, doc, check=False)
        assert out["error"]["kind"] == "invalid-input" and words in out["error"]["message"], out
    assert lab.berth(host, "slice", "ls")["data"] == []
