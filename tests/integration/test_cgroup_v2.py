"""Containers and slices on a cgroup v2 host: one VM lab host (qemu, software emulation).

The namespace lab runs on this machine's hybrid (v1) cgroups; these tests are where the unified
hierarchy's code paths run: AllowedCPUs in a cpuset, MemoryHigh, memory.events, v2 pids/cpu
files, live updates, slice weights. Emulation is slow (a `berth` call in the guest costs about a
second): the set is kept short, and everything runs on one host booted once per session.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import VENV, Lab, berth
from rootfs import ROOTFS, build_rootfs

pytestmark = [pytest.mark.lab, pytest.mark.vm]

CG = "/sys/fs/cgroup"
MiB = 2**20


class V2Box:
    """berth on the VM host; removes the containers and slices a test created."""

    def __init__(self, lab: Lab) -> None:
        self.lab, self.host = lab, lab.hosts[0]
        self.containers: list[str] = []
        self.slices: list[str] = []

    def sh(self, *argv: str, check: bool = True) -> str:
        return self.lab.run(self.host, list(argv), check=check).stdout

    def berth(self, *args: str, input: str | None = None, check: bool = True) -> dict[str, Any]:
        return self.lab.berth(self.host, *args, input=input, check=check)

    def detach(self, name: str, *cmd: str, opts: tuple[str, ...] = ()) -> dict[str, Any]:
        self.containers.append(name)
        return self.berth("run", "-d", "--name", name, "--rootfs", ROOTFS, *opts, *cmd)

    def inspect(self, name: str) -> dict[str, Any]:
        return self.berth("inspect", name)["data"][0]  # type: ignore[no-any-return]

    def cgroup(self, name: str) -> str:
        return f"{CG}{self.inspect(name)['control_group']}"

    def read(self, path: str) -> str:
        return self.sh("cat", path).strip()

    def events(self, path: str) -> dict[str, int]:
        return {k: int(v) for k, v in (line.split() for line in self.read(path).splitlines())}

    def slice(self, doc: dict[str, Any]) -> dict[str, Any]:
        self.slices.append(doc["name"])
        return self.berth("slice", "apply", "-f", "-", input=json.dumps(doc))

    def cleanup(self) -> None:
        for name in self.containers:
            self.lab.run(self.host, ["berth", "rm", "-f", name], check=False)
        for name in reversed(self.slices):
            self.lab.run(self.host, ["berth", "slice", "rm", name], check=False)


@pytest.fixture(scope="module")
def v2_host(vm_lab: Lab) -> str:
    build_rootfs(vm_lab, vm_lab.hosts[0])
    return vm_lab.hosts[0]


@pytest.fixture
def box(vm_lab: Lab, v2_host: str) -> Iterator[V2Box]:
    b = V2Box(vm_lab)
    try:
        yield b
    finally:
        b.cleanup()


def wait_for(probe: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out")


def test_the_vm_host_is_cgroup_v2_and_berth_says_what_it_enforces(box: V2Box) -> None:
    assert box.sh("stat", "-fc", "%T", CG).strip() == "cgroup2fs"
    info = box.berth("system", "info")["data"]
    assert info["cgroup_mode"].startswith("unified")
    assert {"cpuset", "cpu", "io", "memory", "pids"} <= set(info["controllers"])
    assert info["not_enforced"] == [] and {"MemoryHigh", "AllowedCPUs"} <= set(info["enforced"])
    assert info["cpu_pinning"].startswith("AllowedCPUs") and info["oom_kill_reporting"] == "memory.events"
    # A VM host, like a namespace host, has no way off the machine.
    assert box.sh("ip", "-4", "route", "show", "default").strip() == ""
    assert box.sh("nproc").strip() == "2"  # pinning below needs a second CPU


def test_pinning_memory_high_and_a_live_update(box: V2Box) -> None:
    # 48 MiB of page cache under MemoryHigh=16M: the kernel throttles and reclaims.
    out = box.detach(
        "pinned",
        "sh",
        "-c",
        "dd if=/dev/zero of=/fill bs=1M count=48 2>/dev/null; sync; sleep 600",
        opts=("--cpuset-cpus", "1", "-m", "64M", "--memory-high", "16M"),
    )
    assert not out["warnings"], out["warnings"]  # AllowedCPUs and MemoryHigh hold here
    cg = box.cgroup("pinned")
    assert box.read(f"{cg}/cpuset.cpus.effective") == "1"
    assert (int(box.read(f"{cg}/memory.high")), int(box.read(f"{cg}/memory.max"))) == (16 * MiB, 64 * MiB)
    wait_for(lambda: box.events(f"{cg}/memory.events")["high"] > 0)
    pid = box.inspect("pinned")["pid"]
    assert "Cpus_allowed_list:\t1\n" in box.sh("cat", f"/proc/{pid}/status")

    updated = box.berth(
        "update",
        "pinned",
        "--cpuset-cpus",
        "0",
        "--memory",
        "96M",
        "--memory-high",
        "32M",
        "--pids-limit",
        "40",
    )
    assert updated["changed"] and not updated["warnings"]
    assert box.read(f"{cg}/cpuset.cpus.effective") == "0"
    assert (int(box.read(f"{cg}/memory.high")), int(box.read(f"{cg}/memory.max"))) == (32 * MiB, 96 * MiB)
    assert box.read(f"{cg}/pids.max") == "40"
    assert "Cpus_allowed_list:\t0\n" in box.sh("cat", f"/proc/{pid}/status")
    assert box.inspect("pinned")["pid"] == pid  # live: no restart

    stats = box.berth("stats", "pinned")["data"][0]
    assert stats["memory_max"] == 96 * MiB and stats["memory_high"] == 32 * MiB
    assert stats["memory_high_events"] > 0 and stats["oom_kills"] == 0 and stats["tasks"] >= 1
    assert set(stats["pressure_avg10"]) == {"cpu", "memory", "io"}


def test_io_limits_land_in_io_max_iops_included(box: V2Box) -> None:
    """On v2 every per-device limit is enforced through io.max (v1 has no IOPS through systemd)."""
    out = box.detach("io", "sleep", "600", opts=("--device-read-bps", "/:1M", "--device-write-iops", "/:100"))
    assert not out["warnings"], out["warnings"]
    cg = box.cgroup("io")
    [line] = box.read(f"{cg}/io.max").splitlines()
    assert f"rbps={1 << 20}" in line and "wiops=100" in line, line
    box.berth("update", "io", "--device-write-iops", "/:infinity")
    lifted = box.read(f"{cg}/io.max")  # live, and the read limit (another field) stays
    assert "wiops=100" not in lifted and f"rbps={1 << 20}" in lifted, lifted


def test_memory_max_oom_kills_and_memory_events_counts_the_kill(box: V2Box) -> None:
    # The shell (PID 1) survives; its child is killed. On v2 systemd sees the kill in
    # memory.events and stops the unit (OOMPolicy=stop); the shim's ExecStopPost reads the
    # count from the same file while the cgroup still exists.
    box.detach(
        "hog",
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/null bs=200M count=1; sleep 600",
        opts=("-m", "32M", "--memory-swap-max", "0"),
    )
    exit_info = wait_for(lambda: box.inspect("hog")["exit"])
    assert exit_info["reason"] == "oom-killed", exit_info
    record = json.loads(box.sh("cat", "/var/lib/berth/containers/hog/exit.json"))
    assert record["oom_kills"] >= 1 and record["service_result"] == "oom-kill", record


def test_tasks_max(box: V2Box) -> None:
    box.detach(
        "forks",
        "sh",
        "-c",
        "sh -c 'for i in $(seq 60); do sleep 600 & done' 2>/dev/null; sleep 600",
        opts=("--pids-limit", "12"),
    )
    cg = box.cgroup("forks")
    assert box.read(f"{cg}/pids.max") == "12"
    wait_for(lambda: box.events(f"{cg}/pids.events")["max"] > 0)
    assert int(box.read(f"{cg}/pids.current")) <= 12
    assert box.inspect("forks")["status"] == "running"


def test_userns_auto_on_a_kernel_that_takes_no_layer_fds(box: V2Box) -> None:
    """Debian 12's kernel (6.1) stacks idmapped layers by path only: the shim's staged way."""
    release = box.sh("uname", "-r").split("-")[0]
    assert tuple(int(x) for x in release.split(".")[:2]) < (6, 13), f"{release}: takes layer fds"
    box.detach("v2-userns", "sleep", "300", opts=("--userns", "auto"))
    info = box.inspect("v2-userns")
    ids = info["userns"]
    status = box.read(f"/proc/{info['pid']}/status")
    host_uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    assert int(host_uid) == ids["uid"] != 0
    inside = box.sh("berth", "exec", "v2-userns", "sh", "-c", "id -u; stat -c %u /bin/busybox; touch /w")
    assert inside.split() == ["0", "0"]
    upper = "/var/lib/berth/containers/v2-userns/upper/w"
    assert box.sh("stat", "-c", "%u", upper).strip() == str(ids["uid"])


def test_a_slice_tree_with_weights_and_a_cpuset(box: V2Box) -> None:
    top = box.slice({"name": "vt", "resources": {"cpu_weight": 400, "cpus": "1", "mems": "0"}})
    assert not top["warnings"], top["warnings"]  # AllowedCPUs/AllowedMemoryNodes hold on v2
    box.slice({"name": "vt-low", "resources": {"cpu_weight": 50, "memory_high": "64M"}})
    box.slice({"name": "vt-high", "resources": {"cpu_weight": 800}})
    box.detach("spin", "sh", "-c", "while :; do :; done", opts=("--slice", "vt-low"))
    base = f"{CG}/berth.slice/berth-vt.slice"
    assert box.read(f"{base}/cpu.weight") == "400"
    assert box.read(f"{base}/berth-vt-low.slice/cpu.weight") == "50"
    assert box.read(f"{base}/berth-vt-high.slice/cpu.weight") == "800"
    assert int(box.read(f"{base}/berth-vt-low.slice/memory.high")) == 64 * MiB
    assert box.read(f"{base}/cpuset.cpus") == "1" and box.read(f"{base}/cpuset.mems") == "0"
    cg = box.cgroup("spin")
    assert cg == f"{base}/berth-vt-low.slice/berth-spin.service"
    # Bound by the slice it is in (the service's own cgroup has no cpuset of its own to show).
    pid = box.inspect("spin")["pid"]
    assert "Cpus_allowed_list:\t1\n" in box.sh("cat", f"/proc/{pid}/status")
    # Live: the weight moves, the container keeps running.
    box.slice({"name": "vt-low", "resources": {"cpu_weight": 100, "memory_high": "64M"}})
    assert box.read(f"{base}/berth-vt-low.slice/cpu.weight") == "100"
    assert box.inspect("spin")["pid"] == pid


# Last: it reboots the host.
def test_a_vm_host_has_the_labs_interface_and_survives_a_reboot(vm_lab: Lab) -> None:
    host = vm_lab.hosts[0]
    data = berth("lab", "status", "--name", vm_lab.name)["data"]
    assert data["kind"] == "vm" and [h["name"] for h in data["hosts"]] == vm_lab.hosts
    pid = data["hosts"][0]["pid"]
    assert Path(f"/proc/{pid}/comm").read_text().strip().startswith("qemu-system")
    inventory = json.loads(Path(vm_lab.inventory).read_text())["all"]["children"]["berth_lab"]
    assert inventory["hosts"][host]["ansible_host"] == vm_lab.addresses[host]
    assert "StrictHostKeyChecking=yes" in inventory["vars"]["ansible_ssh_common_args"]
    ping = subprocess.run(
        [str(VENV / "bin" / "ansible"), "berth_lab", "-m", "ansible.builtin.ping", "-o"],
        capture_output=True,
        text=True,
        env=vm_lab.ansible_env(),
        timeout=600,
    )
    assert f"{host} | SUCCESS" in ping.stdout, ping.stdout + ping.stderr
    assert vm_lab.run(host, ["hostname"]).stdout.strip() == host
    assert vm_lab.run(host, ["cat", "/proc/1/comm"]).stdout.strip() == "systemd"

    boot_id = vm_lab.run(host, ["cat", "/proc/sys/kernel/random/boot_id"]).stdout
    vm_lab.run(host, ["sh", "-c", "echo kept > /var/lib/berth/reboot-marker; sync"])
    out = berth("lab", "reboot", host, "--name", vm_lab.name)
    vm_lab.refresh()
    assert out["changed"] and vm_lab.pids[host] != pid and not Path(f"/proc/{pid}").exists()
    # The same disk (the host's qcow2 overlay), a new kernel boot.
    assert vm_lab.run(host, ["cat", "/var/lib/berth/reboot-marker"]).stdout.strip() == "kept"
    assert vm_lab.run(host, ["cat", "/proc/sys/kernel/random/boot_id"]).stdout != boot_id
    vm_lab.run(host, ["rm", "/var/lib/berth/reboot-marker"])
