"""VM lab hosts: Debian 12 under qemu (TCG, never KVM) on the lab's bridge, cgroup v2.

A VM host is one qemu process booting the image's kernel (`-kernel`/`-initrd`) with
`systemd.unified_cgroup_hierarchy=1`:

- root file system: `hosts/HOST/disk.qcow2`, a qcow2 overlay over the cached image's `root.img`;
  kept across `reboot`, removed by `down`;
- seed disk (`/opt/berth` in the guest, read-only): `hosts/HOST/seed.img`, ext4 made by
  `mkfs.ext4 -d` (nothing is mounted on the machine); rewritten at every boot;
- NIC: `bt-LAB-N`, a tap device on the lab's bridge; a static address and no default route;
  created at boot, removed at power-off.

The seed disk carries what differs between hosts (/etc/hosts, the systemd-networkd file, the SSH
host key, root's authorized key) and a byte-compiled copy of the lab's own runtime, which the
guest's /usr/local/bin/berth runs. Hostname and machine-id are on the kernel command line.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import berth
from berth.errors import LabError, PermissionDenied, Unsupported
from berth.lab.vm_image import Image

QEMU = "qemu-system-x86_64"
MEMORY_MB = int(os.environ.get("BERTH_LAB_VM_MEMORY", "1024"))
CPUS = int(os.environ.get("BERTH_LAB_VM_CPUS", "2"))
GUEST_PYTHON = (3, 11)  # bookworm's python3: the seed's byte-code is compiled for it


def check_machine(state_root: Path, image_ready: bool) -> None:
    """Refuse before touching anything when a VM lab cannot work here."""
    if os.geteuid() != 0:
        raise PermissionDenied("berth lab --vm needs root: it creates tap devices on a bridge")
    missing = [t for t in (QEMU, "qemu-img") if shutil.which(t) is None]
    if missing:
        raise Unsupported(
            f"berth lab --vm needs {', '.join(missing)}: apt-get install qemu-system-x86 qemu-utils"
        )
    tools = ["mkfs.ext4", "ssh", "ssh-keygen"] + ([] if image_ready else ["mmdebstrap"])
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise Unsupported(
            f"berth lab --vm needs {', '.join(missing)} (packages mmdebstrap, e2fsprogs, openssh-client)"
        )
    if not os.path.exists("/dev/net/tun"):
        raise Unsupported("berth lab --vm needs /dev/net/tun for the hosts' tap devices (modprobe tun?)")
    state_root.mkdir(parents=True, exist_ok=True)


def tap_name(lab: str, index: int) -> str:
    return f"bt-{lab}-{index}"


def mac_address(subnet_octet: int, index: int) -> str:
    return f"52:54:00:fb:{subnet_octet:02x}:{index:02x}"


def network_file(mac: str, address: str) -> str:
    # No Gateway= and no DNS: the host reaches its lab subnet and nothing beyond it.
    return (
        "[Match]\n"
        f"MACAddress={mac}\n\n"
        "[Link]\n"
        "RequiredForOnline=no\n\n"
        "[Network]\n"
        f"Address={address}\n"
        "LinkLocalAddressing=no\n"
        "IPv6AcceptRA=no\n"
    )


def kernel_cmdline(hostname: str, machine_id: str) -> str:
    return " ".join(
        [
            "root=/dev/vda",
            "rw",
            "console=ttyS0",
            "systemd.unified_cgroup_hierarchy=1",
            f"systemd.hostname={hostname}",
            f"systemd.machine_id={machine_id}",
            "net.ifnames=0",
            "panic=-1",  # with -no-reboot: a panicking guest ends its qemu process
            "quiet",
            "systemd.show_status=auto",
        ]
    )


def write_seed(hdir: Path, hosts_file: str, network: str, host_key: Path, authorized_key: str) -> Path:
    """Build the host's read-only seed disk (hosts/HOST/seed.img) from scratch."""
    seed = hdir / "seed"
    shutil.rmtree(seed, ignore_errors=True)
    seed.mkdir(mode=0o755)
    (seed / "hosts").write_text(hosts_file)
    (seed / "lab.network").write_text(network)
    shutil.copyfile(host_key, seed / "ssh_host_ed25519_key")
    os.chmod(seed / "ssh_host_ed25519_key", 0o600)
    shutil.copyfile(f"{host_key}.pub", seed / "ssh_host_ed25519_key.pub")
    (seed / "authorized_keys").write_text(authorized_key)
    package = Path(berth.__file__).resolve().parent
    shutil.copytree(
        package, seed / "runtime" / "berth", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    if sys.version_info[:2] == GUEST_PYTHON:
        # The seed is read-only in the guest: without byte-code there, every `berth` would
        # compile the runtime again (slow under emulation). Hash-based pycs need no mtimes.
        import compileall
        import py_compile

        compileall.compile_dir(
            str(seed / "runtime"),
            quiet=2,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    image = hdir / "seed.img"
    image.unlink(missing_ok=True)
    size_mb = 16 + 2 * sum(f.stat().st_size for f in seed.rglob("*") if f.is_file()) // 2**20
    proc = subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-L", "berthseed", "-d", str(seed), str(image), f"{size_mb}M"],
        capture_output=True,
        text=True,
    )
    shutil.rmtree(seed, ignore_errors=True)
    if proc.returncode != 0:
        raise LabError(f"cannot make the seed disk {image}: {proc.stderr.strip()}")
    return image


def create_overlay(disk: Path, image: Image) -> None:
    """The host's own disk: a qcow2 overlay over the shared, read-only base image."""
    if disk.exists():
        return  # a reboot: the same disk
    proc = subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image.root), str(disk)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise LabError(f"cannot create the overlay disk {disk}: {proc.stderr.strip()}")


def qemu_argv(name: str, hdir: Path, image: Image, cmdline: str, tap: str, mac: str) -> list[str]:
    return [
        QEMU,
        "-name", f"berth-lab-{name}",
        "-machine", "q35",
        "-accel", "tcg,thread=multi",  # never KVM: guests hang on these machines
        "-cpu", "max",
        "-smp", str(CPUS),
        "-m", str(MEMORY_MB),
        "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
        "-no-reboot",
        "-kernel", str(image.kernel),
        "-initrd", str(image.initrd),
        "-append", cmdline,
        "-drive", f"file={hdir / 'disk.qcow2'},if=virtio,format=qcow2,cache=writeback,discard=unmap",
        "-drive", f"file={hdir / 'seed.img'},if=virtio,format=raw,readonly=on",
        "-netdev", f"tap,id=net0,ifname={tap},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=net0,mac={mac}",
        "-device", "virtio-rng-pci",
        "-chardev", f"file,id=console,path={hdir / 'console.log'},append=on",
        "-serial", "chardev:console",
        "-qmp", f"unix:{hdir / 'qmp.sock'},server=on,wait=off",
    ]  # fmt: skip


def start_qemu(argv: list[str], hdir: Path) -> subprocess.Popen[bytes]:
    with open(hdir / "qemu.log", "ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def qmp(sock_path: Path, command: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """Run one QMP command; None when qemu is not answering."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(sock_path))
            reader = sock.makefile("rb")
            json.loads(reader.readline())  # greeting
            for cmd in ("qmp_capabilities", command):
                sock.sendall(json.dumps({"execute": cmd}).encode() + b"\n")
                while True:
                    reply = json.loads(reader.readline())
                    if "return" in reply or "error" in reply:
                        break  # skip asynchronous events
            return reply  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def ssh_argv(key: Path, known_hosts: Path, address: str, connect_timeout: int = 10) -> list[str]:
    return [
        "ssh",
        "-i", str(key),
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", f"ConnectTimeout={connect_timeout}",
        "-o", "LogLevel=ERROR",
        f"root@{address}",
    ]  # fmt: skip


def sshd_banner(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=2) as sock:
            sock.settimeout(2)
            return sock.recv(4).startswith(b"SSH")
    except OSError:
        return False


def wait_until(probe: Any, timeout: float, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(step)


def qemu_processes(lab: str) -> list[int]:
    """qemu processes of this lab's hosts, found by their `-name` (for the leftover check only)."""
    found = []
    prefix = f"berth-lab-{lab}-".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(QEMU.encode()):
            names = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == b"-name"]
            if any(n.startswith(prefix) for n in names):
                found.append(int(entry))
    return found
