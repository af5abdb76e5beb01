#!/bin/sh
# mmdebstrap customize hook for the VM lab's base image: runs on the machine with the new root
# file system as $1 (nothing here touches the machine's own files). Part of the image recipe:
# any change to this file changes the recipe hash, and the next `berth lab up --vm` rebuilds.
#
# Everything that differs between hosts (address, /etc/hosts, SSH host key, authorized key, the
# runtime itself) comes from a small read-only "seed" disk the lab writes at every boot and the
# guest mounts at /opt/berth; the hostname and machine-id come from the kernel command line.
set -eu
R=${1:?root}

# The base image is shared by every VM host: no host keys, no machine-id of its own.
rm -f "$R"/etc/ssh/ssh_host_*
: > "$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
echo berth-vm > "$R/etc/hostname"

cat > "$R/etc/fstab" <<'EOF'
/dev/vda  /          ext4  rw,noatime,errors=remount-ro  0 0
/dev/vdb  /opt/berth ext4  ro,nosuid,nodev,noatime       0 0
EOF
mkdir -p "$R/opt/berth"

mkdir -p "$R/usr/local/lib/berth-lab"
cat > "$R/usr/local/lib/berth-lab/seed" <<'EOF'
#!/bin/sh
# Install this host's identity from its seed disk (written by `berth lab` before every boot).
set -eu
S=/opt/berth
install -m 0644 "$S/hosts" /etc/hosts
install -d /etc/systemd/network
install -m 0644 "$S/lab.network" /etc/systemd/network/10-berth-lab.network
install -m 0600 "$S/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
install -m 0644 "$S/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
install -d -m 0700 /root/.ssh
install -m 0600 "$S/authorized_keys" /root/.ssh/authorized_keys
EOF
chmod 0755 "$R/usr/local/lib/berth-lab/seed"

cat > "$R/etc/systemd/system/berth-lab-seed.service" <<'EOF'
[Unit]
Description=berth lab: this host's identity from its seed disk
DefaultDependencies=no
RequiresMountsFor=/opt/berth
Before=sysinit.target systemd-networkd.service ssh.service
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/berth-lab/seed

[Install]
WantedBy=sysinit.target
EOF

mkdir -p "$R/etc/ssh/sshd_config.d"
cat > "$R/etc/ssh/sshd_config.d/berth-lab.conf" <<'EOF'
# Written by the berth lab image: one host key of this host's own, keys only.
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
EOF

# The runtime is on the seed disk (a copy of the lab's own, byte-compiled there).
cat > "$R/usr/local/bin/berth" <<'EOF'
#!/usr/bin/python3
import sys

sys.path.insert(0, "/opt/berth/runtime")
from berth.cli import main  # noqa: E402

sys.exit(main())
EOF
chmod 0755 "$R/usr/local/bin/berth"

# A small initrd: the default (MODULES=most, ~37 MB) is slow to unpack under emulation, and
# the guest's hardware is known: virtio only.
printf 'MODULES=list\n' > "$R/etc/initramfs-tools/conf.d/berth-lab.conf"
printf 'virtio_pci\nvirtio_blk\next4\n' >> "$R/etc/initramfs-tools/modules"
chroot "$R" update-initramfs -u -k all >/dev/null
rm -f "$R"/boot/*.dpkg-bak "$R"/boot/*.old
# qemu's `-cpu max` offers SVM/VMX; a lab VM has no use for nested KVM.
printf 'blacklist kvm\nblacklist kvm_amd\nblacklist kvm_intel\n' > "$R/etc/modprobe.d/berth-lab.conf"

# Units that have no business in a lab VM: consoles, timers, time sync, network waits, and
# module loads and mounts that only cost boot time under emulation.
for unit in getty@.service serial-getty@.service console-getty.service \
    systemd-networkd-wait-online.service systemd-timesyncd.service systemd-firstboot.service \
    systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount \
    modprobe@drm.service modprobe@efi_pstore.service modprobe@fuse.service modprobe@dm_mod.service \
    modprobe@loop.service sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount \
    sys-fs-fuse-connections.mount dev-hugepages.mount \
    nftables.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer; do
    ln -sf /dev/null "$R/etc/systemd/system/$unit"
done
systemctl --root="$R" enable systemd-networkd.service berth-lab-seed.service >/dev/null 2>&1

# The kernel and initrd are booted from outside the image (qemu -kernel/-initrd); keep the
# modules in the image. Nothing else of apt's caches is needed.
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/*
