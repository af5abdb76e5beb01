"""Bring a lab up, down, reboot one of its hosts, and say what is running.

Every step that creates something records it in the lab's state file first, so `down` can
remove it even after `up` crashed half-way; `down` also finds leftovers by their names
(links, cgroups) and by cgroup membership (processes), never by guessing at PIDs.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.errors import Conflict, InvalidInput, LabError, NotFound, Timeout
from berth.lab import cgroups, hostfs, network, preflight, ssh, vm, vm_image
from berth.lab.config import (
    LAB_SUPERNET,
    MAX_HOSTS,
    LabPaths,
    gateway_address,
    host_address,
    host_mac,
    host_name,
    host_veth,
    state_root,
    validate_lab_name,
)
from berth.lab.inventory import write_inventory
from berth.lab.procs import ProcessRef, children, kill_pids
from berth.state.atomic import atomic_write_json, read_json

BOOT_SCRIPT = Path(__file__).with_name("boot.sh")
BOOT_TIMEOUT = 120.0
VM_BOOT_TIMEOUT = 600.0  # software emulation, several hosts sharing the machine's cores
SIGRTMIN_4 = signal.SIGRTMIN + 4  # systemd: power off


@dataclass
class HostState:
    name: str
    index: int
    address: str
    machine_id: str
    cgroups: list[str] = field(default_factory=list)
    unshare: ProcessRef | None = None
    systemd: ProcessRef | None = None
    boot_seconds: float | None = None
    system_state: str | None = None
    qemu: ProcessRef | None = None  # VM hosts: the qemu process (no unshare, no systemd PID)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": self.index,
            "address": self.address,
            "machine_id": self.machine_id,
            "cgroups": self.cgroups,
            "unshare": self.unshare.to_json() if self.unshare else None,
            "systemd": self.systemd.to_json() if self.systemd else None,
            "boot_seconds": self.boot_seconds,
            "system_state": self.system_state,
            "qemu": self.qemu.to_json() if self.qemu else None,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> HostState:
        return cls(
            name=obj["name"],
            index=obj["index"],
            address=obj["address"],
            machine_id=obj["machine_id"],
            cgroups=list(obj.get("cgroups") or []),
            unshare=ProcessRef.from_json(obj.get("unshare")),
            systemd=ProcessRef.from_json(obj.get("systemd")),
            boot_seconds=obj.get("boot_seconds"),
            system_state=obj.get("system_state"),
            qemu=ProcessRef.from_json(obj.get("qemu")),
        )

    def running(self) -> bool:
        if self.qemu is not None:
            return self.qemu.alive()
        return self.systemd is not None and self.systemd.alive()

    @property
    def pid(self) -> int | None:
        """What `status` reports: the host's systemd, or for a VM host its qemu process."""
        ref = self.qemu or self.systemd
        return ref.pid if ref else None


@dataclass
class LabState:
    name: str
    subnet: str
    hosts: list[HostState]
    kind: str = "namespace"  # or "vm"
    image: str | None = None  # VM labs: the base image's directory

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "subnet": self.subnet,
            "kind": self.kind,
            "image": self.image,
            "hosts": [h.to_json() for h in self.hosts],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> LabState:
        return cls(
            obj["name"],
            obj["subnet"],
            [HostState.from_json(h) for h in obj["hosts"]],
            obj.get("kind", "namespace"),
            obj.get("image"),
        )

    def host(self, name: str) -> HostState:
        for h in self.hosts:
            if h.name == name:
                return h
        raise NotFound(
            f"lab {self.name} has no host {name!r} (hosts: {', '.join(h.name for h in self.hosts)})"
        )


class Lab:
    def __init__(self, name: str, root: Path | None = None) -> None:
        self.paths = LabPaths(validate_lab_name(name), root or state_root())
        self.name = name

    # -- state ---------------------------------------------------------------------------
    def load(self) -> LabState | None:
        try:
            return LabState.from_json(read_json(self.paths.state_file))
        except FileNotFoundError:
            return None

    def save(self, state: LabState) -> None:
        atomic_write_json(self.paths.state_file, state.to_json())

    @contextmanager
    def locked(self) -> Iterator[None]:
        from filelock import FileLock
        from filelock import Timeout as LockTimeout

        self.paths.root.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(self.paths.lock_file), timeout=300):
                yield
        except LockTimeout as exc:
            raise Conflict(f"lab {self.name} is busy: another berth lab command holds its lock") from exc

    # -- up ------------------------------------------------------------------------------
    def up(
        self,
        count: int,
        subnet: str | None = None,
        boot_timeout: float | None = None,
        vm_hosts: bool = False,
    ) -> LabState:
        if not 1 <= count <= MAX_HOSTS:
            raise InvalidInput(f"--hosts must be between 1 and {MAX_HOSTS}, not {count}")
        if vm_hosts:
            vm.check_machine(self.paths.root, vm_image.current(self.paths.root).complete())
        else:
            preflight.check_machine(self.paths.root)
        timeout = boot_timeout or (VM_BOOT_TIMEOUT if vm_hosts else BOOT_TIMEOUT)
        with self.locked():
            old = self.load()
            if old is not None:
                if any(h.running() for h in old.hosts):
                    raise Conflict(
                        f"lab {self.name} is already up: run `berth lab down --name {self.name}` first"
                    )
                self._teardown(old)  # leftovers of a crashed run
            # Built (or found in the cache) before anything of the lab exists: a failed build
            # leaves neither a half-made image nor a half-made lab.
            image = vm_image.ensure(self.paths.root)[0] if vm_hosts else None
            self.paths.dir.mkdir(parents=True, exist_ok=True)
            try:
                with self._subnet_lock():  # two labs booting at once must not pick the same /24
                    net = self._pick_subnet(subnet)
                    state = LabState(
                        self.name,
                        str(net),
                        [
                            HostState(
                                host_name(self.name, i), i, str(host_address(net, i)), hostfs.new_machine_id()
                            )
                            for i in range(1, count + 1)
                        ],
                        kind="vm" if vm_hosts else "namespace",
                        image=str(image.dir) if image else None,
                    )
                    self.save(state)
                    network.create_bridge(self.paths.bridge, gateway_address(net))
                ssh.ensure_keypair(self.paths.private_key, f"berth-lab-{self.name}")
                self._parallel(state, state.hosts, lambda h: self._boot(state, h, timeout))
                self._write_access_files(state)
                self.save(state)
            except BaseException:
                self._teardown(self.load() or LabState(self.name, "", []))
                raise
            return state

    @contextmanager
    def _subnet_lock(self) -> Iterator[None]:
        from filelock import FileLock

        with FileLock(str(self.paths.root / ".subnets.lock"), timeout=60):
            yield

    def _pick_subnet(self, wanted: str | None) -> ipaddress.IPv4Network:
        used = network.used_subnets()
        if wanted is not None:
            try:
                net = ipaddress.IPv4Network(wanted)
            except ValueError as exc:
                raise InvalidInput(f"invalid --subnet {wanted!r}: {exc}") from exc
            if net.prefixlen > 26:
                raise InvalidInput(f"--subnet {wanted} is too small for a lab: use a /26 or larger")
            clash = [str(u) for u in used if u.overlaps(net)]
            if clash:
                raise Conflict(f"--subnet {net} overlaps routes of this machine: {', '.join(clash)}")
            return net
        for net in LAB_SUPERNET.subnets(new_prefix=24):
            if not any(u.overlaps(net) for u in used):
                return net
        raise Conflict(f"no free /24 left in {LAB_SUPERNET} for a lab")

    def _boot(self, state: LabState, host: HostState, timeout: float) -> None:
        if state.kind == "vm":
            self._boot_vm(state, host, timeout)
            return
        started = time.monotonic()
        hdir = self.paths.host_dir(host.name)
        for sub in ("upper", "work", "data", "root"):
            (hdir / sub).mkdir(parents=True, exist_ok=True)
        host_key = hdir / "ssh_host_ed25519_key"
        ssh.ensure_keypair(host_key, host.name)
        hostfs.prepare_upper(
            hdir / "upper",
            host.name,
            host.machine_id,
            self._hosts_file(state),
            host_key,
            ssh.public_key(self.paths.private_key),
        )
        hierarchies = cgroups.machine_hierarchies()
        host.cgroups = [str(d) for d in cgroups.create_host_cgroups(hierarchies, f"berth-lab.{host.name}")]
        self.save(state)
        machine_end, host_end = host_veth(self.name, host.index)
        network.create_veth(machine_end, host_end, self.paths.bridge, host_mac(host.address))

        fifo = hdir / "boot.fifo"
        fifo.unlink(missing_ok=True)
        os.mkfifo(fifo, 0o600)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "BERTH_LAB_CGROUP_PROCS": " ".join(f"{d}/cgroup.procs" for d in host.cgroups),
            "BERTH_LAB_CGROUP_V1": " ".join(cgroups.v1_controllers(hierarchies)),
            "BERTH_LAB_ROOT": str(hdir / "root"),
            "BERTH_LAB_UPPER": str(hdir / "upper"),
            "BERTH_LAB_WORK": str(hdir / "work"),
            "BERTH_LAB_DATA": str(hdir / "data"),
            "BERTH_LAB_HOSTNAME": host.name,
            "BERTH_LAB_FIFO": str(fifo),
            "BERTH_LAB_VETH": host_end,
            "BERTH_LAB_ADDRESS": host.address,
            "BERTH_LAB_STATE_DIR": str(self.paths.root),
            "BERTH_LAB_RUNTIME_BINDS": " ".join(hostfs.runtime_binds()),
        }
        with open(hdir / "console.log", "ab") as console:
            proc = subprocess.Popen(
                ["/bin/sh", str(BOOT_SCRIPT), "enter"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        host.unshare = ProcessRef.of(proc.pid)
        self.save(state)
        inner = self._wait_for(lambda: next(iter(children(proc.pid)), None), 10, host, "its namespaces")
        host.systemd = ProcessRef.of(inner)
        self.save(state)
        network.move_to_netns(host_end, inner)
        self._release(fifo, host)
        self._wait_ready(host, timeout)
        host.boot_seconds = round(time.monotonic() - started, 3)
        proc.returncode = 0  # detached on purpose: the host outlives this command

    def _release(self, fifo: Path, host: HostState) -> None:
        def open_fifo() -> int | None:
            try:
                return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # the boot script is not reading yet
                    return None
                raise

        fd = self._wait_for(open_fifo, 30, host, "its root file system")
        try:
            os.write(fd, b"go\n")
        finally:
            os.close(fd)

    def _wait_for(self, probe: Callable[[], Any], timeout: float, host: HostState, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value is not None:
                return value
            ref = host.qemu or host.unshare
            if ref is not None and not ref.alive():
                raise LabError(f"host {host.name} died while setting up {what}:\n{self.console_tail(host)}")
            if time.monotonic() > deadline:
                raise Timeout(f"host {host.name}: timed out waiting for {what}:\n{self.console_tail(host)}")
            time.sleep(0.02)

    def _wait_ready(self, host: HostState, timeout: float) -> None:
        assert host.systemd is not None
        pid = host.systemd.pid

        def system_state() -> str | None:
            proc = subprocess.run(
                ["nsenter", "-t", str(pid), "-a", "systemctl", "is-system-running", "--wait"],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            word = proc.stdout.strip()
            return word if word in ("running", "degraded") else None

        host.system_state = self._wait_for(system_state, timeout, host, "systemd to finish booting")
        address = host.address.split("/")[0]

        def sshd_answers() -> bool | None:
            try:
                with socket.create_connection((address, 22), timeout=1) as sock:
                    return sock.recv(4).startswith(b"SSH") or None
            except OSError:
                return None

        self._wait_for(sshd_answers, timeout, host, "sshd")

    def _hosts_file(self, state: LabState) -> str:
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{h.address.split('/')[0]}\t{h.name}" for h in state.hosts]
        return "\n".join(lines) + "\n"

    def _write_access_files(self, state: LabState) -> None:
        known = "".join(
            ssh.known_hosts_line(
                [h.name, h.address.split("/")[0]], self.paths.host_dir(h.name) / "ssh_host_ed25519_key"
            )
            for h in state.hosts
        )
        self.paths.known_hosts.write_text(known)
        write_inventory(self.paths, state.hosts)

    def _parallel(self, state: LabState, hosts: list[HostState], fn: Callable[[HostState], None]) -> None:
        with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
            futures = [pool.submit(fn, h) for h in hosts]
            errors = [f.exception() for f in futures if f.exception() is not None]
        self.save(state)
        if errors:
            raise errors[0]  # type: ignore[misc]

    def console_tail(self, host: HostState, lines: int = 15) -> str:
        tails = []
        for log in ("qemu.log", "console.log"):  # qemu.log: VM hosts only (qemu's own errors)
            try:
                text = (self.paths.host_dir(host.name) / log).read_text(errors="replace")
            except FileNotFoundError:
                continue
            tails += text.splitlines()[-lines:]
        return "\n".join(tails) or "(no console output)"

    # -- VM hosts ------------------------------------------------------------------------
    def _boot_vm(self, state: LabState, host: HostState, timeout: float) -> None:
        started = time.monotonic()
        assert state.image is not None
        image = vm_image.Image(Path(state.image))
        if not image.complete():
            raise LabError(f"the lab's image {image.dir} is gone: `berth lab down`, then up again")
        hdir = self.paths.host_dir(host.name)
        hdir.mkdir(parents=True, exist_ok=True)
        host_key = hdir / "ssh_host_ed25519_key"
        ssh.ensure_keypair(host_key, host.name)
        address = host.address.split("/")[0]
        (hdir / "known_hosts").write_text(ssh.known_hosts_line([host.name, address], host_key))
        net = ipaddress.IPv4Network(state.subnet)
        mac = vm.mac_address(net.network_address.packed[2], host.index)
        vm.write_seed(
            hdir,
            self._hosts_file(state),
            vm.network_file(mac, host.address),
            host_key,
            ssh.public_key(self.paths.private_key),
        )
        vm.create_overlay(hdir / "disk.qcow2", image)
        tap = vm.tap_name(self.name, host.index)
        network.create_tap(tap, self.paths.bridge)
        argv = vm.qemu_argv(host.name, hdir, image, vm.kernel_cmdline(host.name, host.machine_id), tap, mac)
        proc = vm.start_qemu(argv, hdir)
        host.qemu = ProcessRef.of(proc.pid)
        self.save(state)
        if host.qemu is None:
            raise LabError(f"qemu for {host.name} exited at once:\n{self.console_tail(host)}")
        self._wait_for(lambda: vm.sshd_banner(address) or None, timeout, host, "sshd")
        remaining = max(10.0, timeout - (time.monotonic() - started))

        def system_state() -> str | None:
            try:
                out = self._ssh(host, ["systemctl", "is-system-running", "--wait"], timeout=remaining)
            except subprocess.TimeoutExpired:
                return None
            word = out.stdout.strip()
            if word in ("running", "degraded"):
                return word
            time.sleep(1)  # sshd restarting, or the system still starting
            return None

        host.system_state = self._wait_for(system_state, remaining, host, "systemd to finish booting")
        host.boot_seconds = round(time.monotonic() - started, 3)
        proc.returncode = 0  # detached on purpose: the host outlives this command

    def _ssh(self, host: HostState, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        import shlex

        hdir = self.paths.host_dir(host.name)
        cmd = vm.ssh_argv(self.paths.private_key, hdir / "known_hosts", host.address.split("/")[0])
        return subprocess.run(
            [*cmd, shlex.join(argv)],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def _power_off_vm(self, host: HostState, clean: bool, grace: float = 90.0) -> None:
        """clean: ACPI power-off (the guest syncs its disk), for a reboot; else qemu quits at once."""
        qmp = self.paths.host_dir(host.name) / "qmp.sock"
        if host.qemu is not None and host.qemu.alive():
            if clean and vm.qmp(qmp, "system_powerdown") is not None:
                host.qemu.wait_gone(grace)
            if host.qemu.alive() and vm.qmp(qmp, "quit") is not None:
                host.qemu.wait_gone(10)
            if host.qemu.signal(signal.SIGKILL):
                host.qemu.wait_gone(5)
        network.delete_link(vm.tap_name(self.name, host.index))
        host.qemu = None

    # -- down ----------------------------------------------------------------------------
    def down(self) -> dict[str, Any]:
        with self.locked():
            state = self.load()
            if state is None and not self.paths.dir.exists() and not self._leftover_links():
                return {"name": self.name, "removed": False, "leftovers": []}
            self._teardown(state or LabState(self.name, "", []))
            return {"name": self.name, "removed": True, "leftovers": self.leftovers()}

    def _teardown(self, state: LabState) -> None:
        self._parallel(state, state.hosts, self._power_off)
        for link in self._leftover_links():
            network.delete_link(link)
        stuck = cgroups.remove_tree([Path(d) for h in state.hosts for d in h.cgroups])
        for leaf in self._leftover_cgroups():
            stuck += cgroups.remove_tree([leaf])
        if stuck:
            raise LabError(f"cgroups still busy after power-off: {', '.join(stuck)}")
        shutil.rmtree(self.paths.dir, ignore_errors=True)

    def _power_off(self, host: HostState, grace: float = 20.0) -> None:
        if host.qemu is not None:
            self._power_off_vm(host, clean=False)
            return
        if host.systemd is not None and host.systemd.signal(SIGRTMIN_4):
            host.systemd.wait_gone(grace)
        if host.systemd is not None:
            host.systemd.signal(signal.SIGKILL)  # takes the whole pid namespace with it
            host.systemd.wait_gone(5)
        if host.unshare is not None:
            host.unshare.signal(signal.SIGKILL)
            host.unshare.wait_gone(5)
        dirs = [Path(d) for d in host.cgroups]
        for _ in range(50):  # anything left in the host's cgroups was started by the host
            pids = cgroups.procs_in(dirs)
            if not pids:
                break
            kill_pids(sorted(pids))
            time.sleep(0.1)
        host.systemd = host.unshare = None

    def _leftover_links(self) -> list[str]:
        return (
            network.links_with_prefix(f"bv-{self.name}-")
            + network.links_with_prefix(f"bp-{self.name}-")
            + network.links_with_prefix(f"bt-{self.name}-")
            + ([self.paths.bridge] if network.link_exists(self.paths.bridge) else [])
        )

    def _leftover_cgroups(self) -> list[Path]:
        found = []
        for h in cgroups.machine_hierarchies():
            try:
                entries = os.listdir(h.own_dir)
            except FileNotFoundError:
                continue
            found += [h.own_dir / e for e in entries if e.startswith(f"berth-lab.{self.name}-")]
        return found

    def leftovers(self) -> list[str]:
        """What of this lab still exists on the machine (empty after a clean `down`)."""
        left = [f"link {name}" for name in self._leftover_links()]
        left += [f"cgroup {p}" for p in self._leftover_cgroups()]
        left += [f"qemu process {pid}" for pid in vm.qemu_processes(self.name)]
        if self.paths.dir.exists():
            left.append(f"dir {self.paths.dir}")
        with open("/proc/self/mountinfo") as fh:
            left += [f"mount {line.split()[4]}" for line in fh if str(self.paths.dir) in line]
        return left

    # -- reboot, status ------------------------------------------------------------------
    def reboot(self, name: str, boot_timeout: float | None = None) -> HostState:
        with self.locked():
            state = self._require()
            host = state.host(name)
            if state.kind == "vm":
                self._power_off_vm(host, clean=True)
                self._boot_vm(state, host, boot_timeout or VM_BOOT_TIMEOUT)
                self.save(state)
                return host
            boot_timeout = boot_timeout or BOOT_TIMEOUT
            self._power_off(host)
            network.delete_link(host_veth(self.name, host.index)[0])
            cgroups.remove_tree([Path(d) for d in host.cgroups])
            self._boot(state, host, boot_timeout)
            self.save(state)
            return host

    def status(self) -> LabState:
        return self._require()

    def _require(self) -> LabState:
        state = self.load()
        if state is None:
            raise NotFound(f"lab {self.name} is not up (no {self.paths.state_file})")
        return state
