#!/bin/sh
# Boots one lab host: systemd as PID 1 in fresh namespaces over an overlay of the machine's /.
#
# Stage "enter" runs on the machine: it moves itself into the host's own cgroups (so that the
# host's systemd gets a subtree of its own) and re-executes itself inside new namespaces.
# Stage "boot" runs as PID 1 of the new pid namespace: it builds the root (overlay, proc,
# sys, cgroups, dev, run, tmp, data bind mount), waits until the lab has moved the host's veth
# into its network namespace, configures it, pivots into the overlay and execs systemd.
#
# A shell script rather than Python because every step is a mount(8)/ip(8) call and it must
# run before any interpreter could be trusted inside the new root. The one rule that keeps the
# machine safe: systemd is exec'd only after the new root is verified to be an overlay mount.
set -eu

die() { echo "berth-lab-boot: $*" >&2; exit 1; }

stage=${1:?stage}

if [ "$stage" = enter ]; then
    for procs in $BERTH_LAB_CGROUP_PROCS; do
        echo $$ > "$procs" || die "cannot enter cgroup $procs"
    done
    exec unshare --pid --fork --kill-child --mount --uts --ipc --net --cgroup \
        /bin/sh "$0" boot
fi

[ "$stage" = boot ] || die "unknown stage $stage"
[ "$$" = 1 ] || die "boot stage must be PID 1 of its own pid namespace"

: "${BERTH_LAB_ROOT:?}" "${BERTH_LAB_UPPER:?}" "${BERTH_LAB_WORK:?}" "${BERTH_LAB_DATA:?}"
: "${BERTH_LAB_HOSTNAME:?}" "${BERTH_LAB_FIFO:?}" "${BERTH_LAB_VETH:?}" "${BERTH_LAB_ADDRESS:?}"
: "${BERTH_LAB_STATE_DIR:?}"
ROOT=$BERTH_LAB_ROOT

mount --make-rprivate /
mkdir -p "$ROOT"
mount -t overlay overlay -o "lowerdir=/,upperdir=$BERTH_LAB_UPPER,workdir=$BERTH_LAB_WORK" "$ROOT"
[ "$(stat -f -c %T "$ROOT")" = overlayfs ] || die "$ROOT is not an overlay: refusing to boot"

mount -t proc -o nosuid,nodev,noexec proc "$ROOT/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$ROOT/sys"

# cgroups: fresh mounts inside the cgroup namespace are rooted at the host's own cgroup and
# writable, which is what lets systemd enforce limits inside the host.
mount -t tmpfs -o mode=755,nosuid,nodev,noexec tmpfs "$ROOT/sys/fs/cgroup"
if [ -n "${BERTH_LAB_CGROUP_V1:-}" ]; then
    for ctrl in $BERTH_LAB_CGROUP_V1; do
        mkdir "$ROOT/sys/fs/cgroup/$ctrl"
        mount -t cgroup -o "nosuid,nodev,noexec,$ctrl" cgroup "$ROOT/sys/fs/cgroup/$ctrl"
    done
    mkdir "$ROOT/sys/fs/cgroup/systemd" "$ROOT/sys/fs/cgroup/unified"
    mount -t cgroup -o nosuid,nodev,noexec,none,name=systemd cgroup "$ROOT/sys/fs/cgroup/systemd"
    mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$ROOT/sys/fs/cgroup/unified"
else
    umount "$ROOT/sys/fs/cgroup"
    mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$ROOT/sys/fs/cgroup"
fi

mount -t tmpfs -o mode=755,nosuid,size=4m tmpfs "$ROOT/dev"
for node in null zero full random urandom tty; do
    touch "$ROOT/dev/$node"
    mount --bind "/dev/$node" "$ROOT/dev/$node"
done
mkdir "$ROOT/dev/pts" "$ROOT/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5,nosuid,noexec devpts "$ROOT/dev/pts"
ln -s pts/ptmx "$ROOT/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$ROOT/dev/shm"
ln -s /proc/self/fd "$ROOT/dev/fd"
ln -s /proc/self/fd/0 "$ROOT/dev/stdin"
ln -s /proc/self/fd/1 "$ROOT/dev/stdout"
ln -s /proc/self/fd/2 "$ROOT/dev/stderr"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$ROOT/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$ROOT/tmp"

# The runtime's data dir must not be on overlayfs (container upper dirs live there).
mkdir -p "$ROOT/var/lib/berth"
mount --bind "$BERTH_LAB_DATA" "$ROOT/var/lib/berth"

# The runtime the lab was started with, read-only, at the same path (its scripts name it).
for path in ${BERTH_LAB_RUNTIME_BINDS:-}; do
    mkdir -p "$ROOT$path"
    mount --bind "$path" "$ROOT$path"
    mount -o remount,bind,ro "$ROOT$path"
done

# Hosts must not read the lab's keys and other hosts' disks through the lower dir.
mount -t tmpfs -o mode=700,size=1m tmpfs "$ROOT$BERTH_LAB_STATE_DIR"

hostname "$BERTH_LAB_HOSTNAME"

# Wait for the lab to move our end of the veth pair in, then configure it. No default
# route: a lab host can reach its lab subnet and nothing beyond it.
read -r _ < "$BERTH_LAB_FIFO"
ip link set lo up
ip link set "$BERTH_LAB_VETH" name eth0
ip addr add "$BERTH_LAB_ADDRESS" dev eth0
ip link set eth0 up

cd "$ROOT"
pivot_root . .
umount -l .
cd /
# As on a host booted by systemd: mounts are shared (systemd leaves this to the container
# manager when it detects one). Unit sandboxing and credentials rely on it.
mount --make-rshared /
exec env -i container=berth-lab TERM=dumb /usr/lib/systemd/systemd --system
