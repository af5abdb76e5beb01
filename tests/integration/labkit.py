"""Shared by the tests on real systemd hosts: the machine-side `berth`, and `Lab`, a running fleet.

A plain module (not conftest.py) so tests import it by a name no other conftest shadows.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock
from filelock import Timeout as LockTimeout

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("VENV", REPO / ".venv"))
BERTH = str(VENV / "bin" / "berth")
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def berth(*args: str, check: bool = True, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run the machine-side `berth ... --json` and return its JSON envelope."""
    proc = subprocess.run(
        [BERTH, "--json", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    try:
        out: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"berth {' '.join(args)} printed no JSON: {proc.stdout!r} {proc.stderr!r}"
        ) from None
    out["exit_code"] = proc.returncode
    if check and proc.returncode != 0:
        raise AssertionError(f"berth {' '.join(args)} failed: {out.get('error')}")
    return out


@dataclass
class Lab:
    """A running lab: its hosts, their addresses and systemd PIDs, and ways to reach them."""

    name: str
    inventory: str
    hosts: list[str]
    addresses: dict[str, str]
    pids: dict[str, int]
    collections_path: str = ""
    kind: str = "namespace"  # "vm": qemu hosts, reached over SSH (pids are the qemu processes)
    _envs: dict[str, str] = field(default_factory=dict)

    def ssh_argv(self, host: str) -> list[str]:
        """ssh to `host` as Ansible does: the lab's key, its pinned host keys."""
        lab_dir = Path(self.inventory).parent
        return [
            "ssh", "-i", str(lab_dir / "id_ed25519"),
            "-o", f"UserKnownHostsFile={lab_dir / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "LogLevel=ERROR",
            # one connection per host, reused: a handshake costs seconds under emulation
            "-o", "ControlMaster=auto", "-o", f"ControlPath={lab_dir}/ssh-%C", "-o", "ControlPersist=300",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
            f"root@{self.addresses[host]}",
        ]  # fmt: skip

    def refresh(self) -> None:
        data = berth("lab", "status", "--name", self.name)["data"]
        self.pids = {h["name"]: h["pid"] for h in data["hosts"]}
        if self.kind == "vm":  # a rebooted VM: the shared SSH connection belongs to its last boot
            for host in self.hosts:
                argv = self.ssh_argv(host)
                subprocess.run([*argv[:-1], "-O", "exit", argv[-1]],
                               capture_output=True, timeout=30)  # fmt: skip

    def run(
        self,
        host: str,
        argv: Sequence[str],
        input: str | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside `host` (all its namespaces, or over SSH), with a clean environment."""
        env_args = [f"{k}={v}" for k, v in {"PATH": HOST_PATH, **(env or {})}.items()]
        if self.kind == "vm":
            cmd = [*self.ssh_argv(host), shlex.join(["env", "-i", *env_args, *argv])]
        else:
            cmd = ["nsenter", "-t", str(self.pids[host]), "-a", "env", "-i", *env_args, *argv]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} on {host} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def berth(
        self,
        host: str,
        *args: str,
        input: str | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Run `berth ... --json` inside `host`; return the JSON envelope plus `exit_code`."""
        proc = self.run(host, ["berth", "--json", *args], input=input, check=False, env=env)
        try:
            out: dict[str, Any] = json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise AssertionError(
                f"berth {' '.join(args)} on {host}: no JSON: {proc.stdout!r} {proc.stderr!r}"
            ) from None
        out["exit_code"] = proc.returncode
        if check and proc.returncode != 0:
            raise AssertionError(f"berth {' '.join(args)} on {host} failed: {out.get('error')}")
        return out

    def ansible_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '')}",
            "ANSIBLE_COLLECTIONS_PATH": self.collections_path,
            "ANSIBLE_INVENTORY": self.inventory,
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_STDOUT_CALLBACK": "default",
            "ANSIBLE_LOCAL_TEMP": str(Path(self.collections_path).parent / "ansible-tmp"),
        }

    def ansible_playbook(
        self, playbook: str | Path, *extra: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(VENV / "bin" / "ansible-playbook"), str(playbook), *extra],
            capture_output=True,
            text=True,
            env=self.ansible_env(),
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"ansible-playbook {playbook} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc


def boot_lab(name: str, hosts: int, vm: bool = False) -> Lab:
    data = berth("lab", "up", "--name", name, "--hosts", str(hosts), *(["--vm"] if vm else []))["data"]
    return Lab(
        name=name,
        inventory=data["inventory"],
        hosts=[h["name"] for h in data["hosts"]],
        addresses={h["name"]: h["address"] for h in data["hosts"]},
        pids={h["name"]: h["pid"] for h in data["hosts"]},
        kind=data["kind"],
    )


def _busy(lock_file: Path) -> bool:
    """A lab whose lock is held is being booted (or downed) by a session running beside this one."""
    try:
        with FileLock(str(lock_file), timeout=0):
            return False
    except LockTimeout:
        return True


def down_stale_labs() -> None:
    """Remove labs left by interrupted sessions: state on disk, but no host alive."""
    root = Path(os.environ.get("BERTH_LAB_STATE_DIR") or "/var/lib/berth-lab")
    for state_file in root.glob("*/lab.json"):
        try:
            hosts = json.loads(state_file.read_text())["hosts"]
        except (OSError, ValueError, KeyError):
            continue
        refs = [h.get("qemu") or h.get("systemd") for h in hosts]  # a VM host's process is qemu
        alive = [r for r in refs if r and Path(f"/proc/{r['pid']}").exists()]
        if not alive and not _busy(root / f".{state_file.parent.name}.lock"):
            berth("lab", "down", "--name", state_file.parent.name, check=False)
