"""A tiny root filesystem from Debian's busybox-static, built inside a lab host for container tests.

It stands in for an image until the image store lands: one read-only layer.
"""

from __future__ import annotations

from labkit import Lab

ROOTFS = "/var/lib/berth/test-rootfs"

BUILD = r"""
set -e
R=$1
rm -rf "$R.tmp"; mkdir -p "$R.tmp/bin" "$R.tmp/etc" "$R.tmp/root" "$R.tmp/tmp" "$R.tmp/mnt"
cp /bin/busybox "$R.tmp/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R.tmp/bin/$a"; done
cat > "$R.tmp/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/:/bin/sh
app:x:1000:1000:app:/:/bin/sh
PASSWD
printf 'root:x:0:\nnogroup:x:65534:\napp:x:1000:\nextra:x:2000:app\n' > "$R.tmp/etc/group"
chmod 1777 "$R.tmp/tmp"
rm -rf "$R"; mv "$R.tmp" "$R"
"""


def build_rootfs(lab: Lab, host: str, path: str = ROOTFS) -> str:
    lab.run(host, ["sh", "-s", path], input=BUILD)
    return path
