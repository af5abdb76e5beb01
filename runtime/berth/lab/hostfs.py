"""What the lab writes into a host's overlay upper dir before each boot.

Files placed in the upper dir shadow the machine's files in the host's view only; the
machine's own files are never touched.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

import berth

# Units that must not run in a lab host: consoles, anything that writes the machine's kernel
# settings, services installed on the machine for other purposes, and anything that would try
# to reach the network beyond the lab.
MASKED_UNITS = (
    "getty@.service",
    "serial-getty@.service",
    "console-getty.service",
    "container-getty@.service",
    "systemd-sysctl.service",
    "systemd-modules-load.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount",
    "systemd-networkd-wait-online.service",
    "systemd-timesyncd.service",
    "systemd-firstboot.service",
    "systemd-pstore.service",
    "networking.service",
    "ifupdown-wait-online.service",
    "postgresql.service",
    "docker-registry.service",
    "docker.service",
    "containerd.service",
    "podman.service",
    "podman.socket",
    "podman-restart.service",
    "podman-auto-update.timer",
    "podman-auto-update.service",
    "podman-clean-transient.service",
    "podman-kube@.service",
    "nftables.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "man-db.timer",
)

SSHD_DROP_IN = """\
# Written by berth lab: one host key of this host's own, keys only.
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
"""


def runtime_binds() -> list[str]:
    """Paths the host needs, read-only, to run the same `berth` as the lab itself."""
    binds = [sys.prefix]
    package_root = str(Path(berth.__file__).resolve().parent.parent)
    if not package_root.startswith(sys.prefix.rstrip("/") + "/"):
        binds.append(package_root)  # an editable install: the source tree too
    return binds


def prepare_upper(
    upper: Path,
    hostname: str,
    machine_id: str,
    hosts_file: str,
    host_key: Path,
    authorized_key: str,
) -> None:
    etc = upper / "etc"
    (etc / "systemd" / "system").mkdir(parents=True, exist_ok=True)
    _write(etc / "hostname", f"{hostname}\n")
    _write(etc / "machine-id", f"{machine_id}\n", 0o444)
    _write(etc / "hosts", hosts_file)
    for unit in MASKED_UNITS:
        link = etc / "systemd" / "system" / unit
        if not link.is_symlink():
            link.unlink(missing_ok=True)
            os.symlink("/dev/null", link)

    ssh = etc / "ssh"
    (ssh / "sshd_config.d").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(host_key, ssh / "ssh_host_ed25519_key")
    os.chmod(ssh / "ssh_host_ed25519_key", 0o600)
    shutil.copyfile(f"{host_key}.pub", ssh / "ssh_host_ed25519_key.pub")
    _write(ssh / "sshd_config.d" / "berth-lab.conf", SSHD_DROP_IN)

    root_ssh = upper / "root" / ".ssh"
    root_ssh.mkdir(parents=True, exist_ok=True)
    os.chmod(root_ssh, 0o700)
    _write(root_ssh / "authorized_keys", authorized_key, 0o600)

    bin_dir = upper / "usr" / "local" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    berth_link = bin_dir / "berth"
    berth_link.unlink(missing_ok=True)
    os.symlink(os.path.join(sys.prefix, "bin", "berth"), berth_link)


def new_machine_id() -> str:
    return uuid.uuid4().hex


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.unlink(missing_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
