# shellcheck shell=sh
# ExecStopPost of every container unit: why the container stopped, written to the exit file
# ($1) while the unit's cgroup still exists. The same document as `main.py record-exit`
# (berth/shim/exit_record.py) writes, without starting Python: this runs at every stop of a
# container, on the path of `berth run --rm`. POSIX sh; run as `/bin/sh record-exit.sh FILE`.
#
# {"service_result": ..., "exit_code": ..., "exit_status": ..., "oom_killed": ...,
#  "oom_kills": ..., "invocation_id": ...}: systemd's $SERVICE_RESULT, $EXIT_CODE, $EXIT_STATUS
# and $INVOCATION_ID (null when unset), and the kernel's OOM kill count for the unit's memory
# cgroup (v1 memory.oom_control, else v2 memory.events).

out=$1
tmp=$out.tmp

memory=
unified=
while IFS=: read -r _ controllers path; do
    case $controllers in
        memory) memory=/sys/fs/cgroup/memory$path/memory.oom_control ;;
        '') unified=/sys/fs/cgroup$path/memory.events ;;
    esac
done < /proc/self/cgroup

kills=0
for file in "$memory" "$unified"; do
    [ -n "$file" ] || continue
    found=
    {
        while read -r key value; do
            if [ "$key" = oom_kill ]; then
                kills=$value
                found=1
                break
            fi
        done < "$file"
    } 2> /dev/null
    [ -n "$found" ] && break
done
case $kills in '' | *[!0-9]*) kills=0 ;; esac

# A JSON string: systemd's values are words and numbers; quotes and backslashes are escaped
# all the same.
json() {
    rest=$1
    text=
    while :; do
        case $rest in
            *[\\\"]*)
                head=${rest%%[\\\"]*}
                char=${rest#"$head"}
                rest=${char#?}
                char=${char%"$rest"}
                text=$text$head\\$char
                ;;
            *)
                printf '"%s' "$text$rest"
                printf '"'
                return
                ;;
        esac
    done
}

# JSON of variable $1: null when it is unset
field() {
    if eval "[ -z \"\${$1+set}\" ]"; then
        printf null
    else
        eval "json \"\$$1\""
    fi
}

oom_killed=false
if [ "${SERVICE_RESULT-}" = oom-kill ] || [ "$kills" -gt 0 ]; then
    oom_killed=true
fi

{
    printf '{"service_result": %s, ' "$(field SERVICE_RESULT)"
    printf '"exit_code": %s, ' "$(field EXIT_CODE)"
    printf '"exit_status": %s, ' "$(field EXIT_STATUS)"
    printf '"oom_killed": %s, "oom_kills": %s, ' "$oom_killed" "$kills"
    printf '"invocation_id": %s}' "$(field INVOCATION_ID)"
} > "$tmp" || exit 1
sync "$tmp" 2> /dev/null || sync
mv -f "$tmp" "$out"
