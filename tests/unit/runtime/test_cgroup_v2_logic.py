"""cgroup v2 decisions and the VM lab's pure parts: no VM, no root, no cgroupfs needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.containers import cgroup_files
from berth.containers.config import resource_properties
from berth.lab import vm, vm_image
from berth.units.limits import cpuset_available, unenforced


def test_on_v2_a_missing_controller_is_reported_per_property() -> None:
    warnings = unenforced(["MemoryMax", "AllowedCPUs", "TasksMax"], True, ["memory", "pids"])
    assert [w.split()[0] for w in warnings] == ["AllowedCPUs"]
    assert "cpuset controller" in warnings[0] and "delegated" in warnings[0]
    assert unenforced(["MemoryHigh", "AllowedCPUs"], True, ["cpuset", "memory"]) == []


def test_cpus_pin_with_a_cpuset_where_one_is_delegated(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    assert not cpuset_available(True, tmp_path)  # v2 without cpuset: CPUAffinity
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu memory pids\n")
    assert cpuset_available(True, tmp_path)
    assert not cpuset_available(False, tmp_path)


def test_resource_properties_on_v2_use_the_unified_properties() -> None:
    props, _ = resource_properties({"cpus": "0,1", "memory_high": 16 * 2**20}, True)
    assert props == {"AllowedCPUs": [0, 1], "MemoryHigh": 16 * 2**20}
    v1, warnings = resource_properties({"cpus": "1"}, False)
    assert v1 == {"CPUAffinity": [1]} and "cgroup v1" in warnings[0]


def test_v2_stats_come_from_memory_events_cpu_stat_and_psi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cg = tmp_path / "berth.slice" / "berth-x.service"
    cg.mkdir(parents=True)
    (cg / "memory.events").write_text("low 0\nhigh 17\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n")
    (cg / "cpu.stat").write_text("usage_usec 10\nnr_throttled 2\nthrottled_usec 4500\n")
    (cg / "memory.pressure").write_text("some avg10=1.50 avg60=0.00 avg300=0.00 total=9\nfull avg10=0.00\n")
    monkeypatch.setattr(cgroup_files, "CGROUP", tmp_path)
    stats = cgroup_files.cgroup_stats("/berth.slice/berth-x.service", True)
    assert (stats["memory_high_events"], stats["memory_max_events"], stats["oom_kills"]) == (17, 3, 1)
    assert stats["cpu_throttled_usec"] == 4500
    assert stats["pressure_avg10"] == {"cpu": None, "memory": 1.5, "io": None}
    assert set(cgroup_files.cgroup_stats("", True)) == set(cgroup_files.STAT_KEYS)


def test_the_image_recipe_hash_follows_the_package_list(monkeypatch: pytest.MonkeyPatch) -> None:
    first = vm_image.recipe_hash()
    assert first == vm_image.recipe_hash() and len(first) == 16
    monkeypatch.setitem(vm_image.RECIPE, "packages", [*vm_image.RECIPE["packages"], "strace"])
    assert vm_image.recipe_hash() != first


def test_a_vm_host_boots_unified_with_no_way_off_the_lab() -> None:
    cmdline = vm.kernel_cmdline("lab-1", "ab" * 16).split()
    assert "systemd.unified_cgroup_hierarchy=1" in cmdline and "systemd.hostname=lab-1" in cmdline
    network = vm.network_file("52:54:00:fb:07:01", "10.251.7.11/24")
    assert "Address=10.251.7.11/24" in network and "Gateway" not in network and "DNS" not in network
    argv = vm.qemu_argv("lab-1", Path("/x"), vm_image.Image(Path("/img")), "c", "bt-lab-1", "m")
    assert "tcg,thread=multi" in argv and not any("kvm" in a for a in argv)
    assert vm.tap_name("abcdefgh", 32) == "bt-abcdefgh-32" and len(vm.tap_name("abcdefgh", 32)) <= 15
