"""`berth lab`: real systemd hosts on this machine, reachable over SSH, gone without a trace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from labkit import BERTH, VENV, Lab, berth, boot_lab

pytestmark = pytest.mark.lab

STATE_ROOT = Path("/var/lib/berth-lab")


def test_every_host_answers_ansible_ping_over_ssh(lab: Lab) -> None:
    proc = subprocess.run(
        [str(VENV / "bin" / "ansible"), "berth_lab", "-m", "ansible.builtin.ping", "-o"],
        capture_output=True,
        text=True,
        env=lab.ansible_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for host in lab.hosts:
        assert f"{host} | SUCCESS" in proc.stdout


def test_each_host_is_its_own_systemd_machine(lab: Lab) -> None:
    machine_ids = set()
    for host in lab.hosts:
        assert lab.run(host, ["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
        assert lab.run(host, ["hostname"]).stdout.strip() == host
        state = lab.run(host, ["systemctl", "is-system-running"], check=False).stdout.strip()
        assert state == "running", lab.run(host, ["systemctl", "--failed"], check=False).stdout
        machine_ids.add(lab.run(host, ["cat", "/etc/machine-id"]).stdout.strip())
        # The runtime's data dir is a real filesystem, not the host's overlay.
        fstype = lab.run(host, ["findmnt", "-n", "-o", "FSTYPE", "/var/lib/berth"]).stdout.strip()
        assert fstype not in ("overlay", "")
        assert lab.run(host, ["findmnt", "-n", "-o", "FSTYPE", "/"]).stdout.strip() == "overlay"
        # No way off the machine: no default route.
        assert lab.run(host, ["ip", "-4", "route", "show", "default"]).stdout.strip() == ""
        # The lab's keys and other hosts' disks are hidden.
        assert lab.run(host, ["ls", "-A", str(STATE_ROOT)]).stdout.strip() == ""
        assert lab.run(host, ["berth", "version"]).returncode == 0
    assert len(machine_ids) == len(lab.hosts)


def test_hosts_reach_each_other_by_name(lab: Lab) -> None:
    first, *others = lab.hosts
    for other in others:
        probe = f"import socket; socket.create_connection(('{other}', 22), timeout=5).close()"
        lab.run(first, ["python3", "-c", probe])


def test_hosts_enforce_cgroup_limits(lab: Lab) -> None:
    host = lab.hosts[0]
    lab.run(
        host,
        ["systemd-run", "--unit=limits-probe", "-p", "MemoryMax=64M", "-p", "TasksMax=50", "sleep", "300"],
    )
    try:
        cgroup = lab.run(host, ["systemctl", "show", "-P", "ControlGroup", "limits-probe"]).stdout.strip()
        mem = lab.run(host, ["cat", f"/sys/fs/cgroup/memory{cgroup}/memory.limit_in_bytes"]).stdout
        pids = lab.run(host, ["cat", f"/sys/fs/cgroup/pids{cgroup}/pids.max"]).stdout
        assert int(mem) == 64 * 1024 * 1024
        assert pids.strip() == "50"
    finally:
        lab.run(host, ["systemctl", "stop", "limits-probe"], check=False)


def test_status_reports_name_address_and_pid(lab: Lab) -> None:
    data = berth("lab", "status", "--name", lab.name)["data"]
    assert [h["name"] for h in data["hosts"]] == lab.hosts
    for h in data["hosts"]:
        assert h["running"] and h["address"] == lab.addresses[h["name"]]
        assert Path(f"/proc/{h['pid']}/comm").read_text().strip() == "systemd"
    inv = berth("lab", "inventory", "--name", lab.name)["data"]["inventory"]
    assert inv == lab.inventory and json.loads(Path(inv).read_text())["all"]["children"]["berth_lab"]


def test_reboot_keeps_the_data_dir_and_changes_the_boot(lab: Lab) -> None:
    host = lab.hosts[-1]
    boot_id = lab.run(host, ["cat", "/proc/sys/kernel/random/boot_id"]).stdout
    old_pid = lab.pids[host]
    lab.run(host, ["sh", "-c", "echo kept > /var/lib/berth/reboot-marker; echo gone > /run/marker"])
    peer, address = lab.hosts[0], lab.addresses[host]
    mac = lab.run(host, ["cat", "/sys/class/net/eth0/address"]).stdout.strip()
    connect = ["timeout", "2", "bash", "-c", f"</dev/tcp/{address}/22"]  # the host's sshd
    lab.run(peer, connect)  # the peer has the host's MAC in its neighbour table now
    out = berth("lab", "reboot", host, "--name", lab.name)
    lab.refresh()
    assert out["changed"] and lab.pids[host] != old_pid
    # Same address, same MAC: the peer reaches the rebooted host at once, its neighbour entry
    # still right (a new random MAC left it sending into the void for seconds).
    assert lab.run(peer, connect, check=False).returncode == 0
    assert lab.run(host, ["cat", "/sys/class/net/eth0/address"]).stdout.strip() == mac
    assert lab.run(host, ["cat", "/var/lib/berth/reboot-marker"]).stdout.strip() == "kept"
    assert lab.run(host, ["test", "-e", "/run/marker"], check=False).returncode == 1
    # A new boot as far as the host's systemd is concerned: a fresh journal boot, fresh /run.
    assert lab.run(host, ["systemctl", "is-system-running"], check=False).stdout.strip() == "running"
    lab.run(host, ["rm", "/var/lib/berth/reboot-marker"])
    del boot_id  # the kernel's boot_id is the machine's: not a signal inside a namespace host


# -- up/down lifecycle and bad input, on labs of their own ----------------------------------------


def leftovers(name: str, pids: list[int]) -> list[str]:
    left = []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    left += [w for w in links.split() if w.startswith((f"bv-{name}-", f"bp-{name}-", f"bbr-{name}"))]
    left += [f"pid {p}" for p in pids if Path(f"/proc/{p}").exists()]
    left += [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if f"berth-lab/{name}/" in line
    ]
    if (STATE_ROOT / name).exists():
        left.append(str(STATE_ROOT / name))
    for ctrl in Path("/sys/fs/cgroup").iterdir():
        left += [str(p) for p in ctrl.rglob(f"berth-lab.{name}-*")] if ctrl.is_dir() else []
    return left


def test_down_leaves_nothing_behind() -> None:
    fleet = boot_lab("bd", 2)
    pids = list(fleet.pids.values())
    try:
        assert leftovers("bd", []) != []  # while up, there is something to find
    finally:
        down = berth("lab", "down", "--name", "bd")
    assert down["changed"] and down["data"]["leftovers"] == []
    assert leftovers("bd", pids) == []
    again = berth("lab", "down", "--name", "bd")
    assert not again["changed"]


def test_up_refuses_a_name_clash_and_keeps_the_running_lab(lab: Lab) -> None:
    out = berth("lab", "up", "--name", lab.name, "--hosts", "1", check=False)
    assert out["exit_code"] != 0 and out["error"]["kind"] == "conflict"
    assert "already up" in out["error"]["message"]
    lab.refresh()
    assert all(Path(f"/proc/{pid}").exists() for pid in lab.pids.values())


def test_up_refuses_a_subnet_that_overlaps_a_route(lab: Lab) -> None:
    taken = berth("lab", "status", "--name", lab.name)["data"]["subnet"]
    out = berth("lab", "up", "--name", "bs", "--hosts", "1", "--subnet", taken, check=False)
    assert out["error"]["kind"] == "conflict" and "overlaps" in out["error"]["message"]
    assert leftovers("bs", []) == []


@pytest.mark.parametrize(
    "args, kind",
    [
        (["--name", "../x"], "invalid-input"),
        (["--name", "Upper"], "invalid-input"),
        (["--name", "muchtoolongname"], "invalid-input"),
        (["--name", "bz", "--hosts", "0"], "invalid-input"),
        (["--name", "bz", "--subnet", "10.251.300.0/24"], "invalid-input"),
        (["--name", "bz", "--subnet", "10.252.0.0/30"], "invalid-input"),
    ],
)
def test_up_rejects_bad_input_with_nothing_left(args: list[str], kind: str) -> None:
    out = berth("lab", "up", *args, check=False)
    assert out["exit_code"] != 0 and out["error"]["kind"] == kind, out
    assert leftovers("bz", []) == []


def test_down_cleans_up_after_up_was_killed() -> None:
    proc = subprocess.Popen(
        [BERTH, "lab", "up", "--name", "bc", "--hosts", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state_file = STATE_ROOT / "bc" / "lab.json"
    pids: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not pids:
        try:
            hosts = json.loads(state_file.read_text())["hosts"]
            pids = [h["systemd"]["pid"] for h in hosts if h.get("systemd")]
        except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
            pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert pids, "the killed `up` never got as far as starting a host"
    down = berth("lab", "down", "--name", "bc")
    assert down["data"]["leftovers"] == []
    assert leftovers("bc", pids) == []


def _in_private_mount_ns(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-ec", script],
        capture_output=True,
        text=True,
        env={**os.environ, "BERTH": BERTH},
    )


def test_up_refuses_a_state_dir_on_overlayfs(scratch_dir: Path) -> None:
    d = scratch_dir
    proc = _in_private_mount_ns(
        f"mkdir -p {d}/l {d}/u {d}/w {d}/m; "
        f"mount -t overlay overlay -o lowerdir={d}/l,upperdir={d}/u,workdir={d}/w {d}/m; "
        f'BERTH_LAB_STATE_DIR={d}/m "$BERTH" lab up --name bo --hosts 1 --json || true'
    )
    out = json.loads(proc.stdout)
    assert out["error"]["kind"] == "unsupported" and "overlayfs" in out["error"]["message"]
    assert leftovers("bo", []) == []


def test_up_refuses_a_machine_without_systemd() -> None:
    proc = _in_private_mount_ns(
        'mount --bind /dev/null /usr/lib/systemd/systemd; "$BERTH" lab up --name bn --json || true'
    )
    out = json.loads(proc.stdout)
    assert out["error"]["kind"] == "unsupported" and "systemd" in out["error"]["message"]
    assert leftovers("bn", []) == []
