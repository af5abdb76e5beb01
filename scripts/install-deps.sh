#!/usr/bin/env bash
# Everything the test suite and the demo need on a fresh Debian 12 machine, as root.
# Idempotent: packages already installed are skipped without touching apt at all.
# `install-deps.sh vm` also installs what the cgroup v2 VM lab needs (`berth lab up --vm`,
# `make test-vm`): qemu under software emulation and mmdebstrap to build the guest's image.
set -euo pipefail

PACKAGES=(
    systemd dbus iproute2 nftables util-linux procps kmod
    openssh-server openssh-client
    python3 python3-venv python3-dev gcc
    busybox-static docker-registry skopeo jq git
    shellcheck
)
if [ "${1:-}" = vm ]; then
    PACKAGES+=(qemu-system-x86 qemu-utils mmdebstrap e2fsprogs)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    # Packages must not start their services on this machine (sshd, the registry): tests and
    # lab hosts start what they need themselves. policy-rc.d is removed again on any exit.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
