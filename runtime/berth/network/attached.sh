# shellcheck shell=sh
# ExecStartPre of a container unit with a restart policy on bridge networks. Exits 0 at once when
# the container is attached, in this boot, to a live namespace: the command that started the unit
# attached it (every first start; a rollback's start, which unparked it). Otherwise it runs the
# full hook, "$@" (python -m berth.network.hook attach NAME), which attaches or unparks: a
# restart by systemd after a crash. The test is berth.network.hook.attached_this_boot's, without
# starting Python, which cost ~35 ms of every deployment container's start.
#
# POSIX sh; run as `/bin/sh attached.sh RECORD NETNS CMD...`. RECORD is the attachment record,
# berth's own JSON (berth.state.atomic: indent 2, sorted keys), so its top-level keys are the
# lines indented by two spaces; a line not found only sends us down the full path.

record=$1
netns=$2
shift 2

# The boot identity as berth.host.boot_identity writes it: the kernel's boot_id and the start
# time of PID 1 (field 22 of /proc/1/stat, counted from the last ")": the name may hold spaces).
pid1_start() {
    read -r stat < /proc/1/stat
    # shellcheck disable=SC2086 # split on purpose: the fields after the name
    set -- ${stat##*) }
    echo "${20}"
}

attached() {
    [ -r "$record" ] && [ -e "$netns" ] || return 1
    read -r boot_id < /proc/sys/kernel/random/boot_id
    boot="  \"boot\": \"$boot_id:$(pid1_start)\""
    status='  "status": "attached"'
    grep -qxF -e "$boot" -e "$boot," "$record" || return 1
    grep -qxF -e "$status" -e "$status," "$record" || return 1
    # A bind-mounted namespace handle, not a leftover file: another device than its directory.
    [ "$(stat -c %d "$netns")" != "$(stat -c %d "${netns%/*}")" ]
}

if attached; then
    exit 0
fi
exec "$@"
