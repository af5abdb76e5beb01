#!/usr/bin/env bash
# `make demo`: the whole Berth story on a local fleet of real systemd hosts, with no outside network.
#
#   1. boot a lab of 3 hosts (`berth lab up`: systemd as PID 1 in namespaces, one bridge);
#   2. build app:1, app:2 and a broken app:3 from a Containerfile (busybox httpd; v3 listens on
#      the wrong port, so its health check never passes), into a throwaway image store;
#   3. push them to a registry this script starts on the lab's side of the machine (plain HTTP);
#   4. prepare the hosts with playbooks/hosts.yml (the role berth.fleet.host);
#   5. roll v1, then v2 across the fleet with playbooks/deploy.yml: hosts pull the release, a canary
#      first, then batches, each host behind a health gate;
#   6. try v3: the canary fails its gate and rolls itself back, the rollout stops, the fleet stays on v2;
#   7. roll the fleet back to v1 with playbooks/rollback.yml (no registry needed);
#   8. after each step, GET what every host serves; at the end, one table of every host's step.
#
# Everything it starts (the lab, the registry, a test client, ssh connections) is stopped on exit,
# also on failure or Ctrl-C, by PID; its temp dir is removed. Environment: VENV (default .venv),
# BERTH_DEMO_LAB (lab name, default demo), BERTH_DEMO_HOSTS (default 3), TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VENV=${VENV:-$REPO/.venv}
LAB=${BERTH_DEMO_LAB:-demo}
HOSTS=${BERTH_DEMO_HOSTS:-3}
BATCHES='[1, "50%"]'  # a canary host, then half the fleet at a time
export PATH="$VENV/bin:$PATH"

work='' sockets='' registry_pid='' watch_pid='' lab_ours=0 started=$SECONDS

if [ -t 1 ]; then B=$'\e[1m' D=$'\e[2m' R=$'\e[0m'; else B='' D='' R=''; fi
step() { printf '\n%s== [%d:%02d] %s%s\n' "$B" $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*" "$R"; }
say() { printf '  %s\n' "$*"; }
render() { "$VENV/bin/python" "$REPO/scripts/demo_view.py" "$@"; }
mberth() { BERTH_DATA_DIR=$work/store berth "$@"; }  # the machine's builds: a throwaway image store
show() {  # print a command as a reader would type it: paths relative to the demo's dir or the repo
    local s="$*"
    s=${s//$work\//}
    s=${s//$REPO\//}
    printf '  %s$ %s%s\n' "$D" "$s" "$R"
}
run() {  # run LOG EXPECT CMD...: CMD's output goes to logs/LOG; shown only when its exit is not EXPECTed
    local log=$work/logs/$1 expect=$2 rc=0
    shift 2
    "$@" >"$log" 2>&1 || rc=$?
    if [ "$rc" = 130 ] || tail -n 3 "$log" | grep -q 'User interrupted execution'; then
        exit 130  # Ctrl-C: Ansible caught it and exited 1 on its own
    fi
    if { [ "$expect" = ok ] && [ "$rc" != 0 ]; } || { [ "$expect" = fail ] && [ "$rc" = 0 ]; }; then
        printf '\n!! %s exited %s, expected %s; the end of its output:\n' "$(basename "$1")" "$rc" "$expect" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
}
stop_pid() {  # stop_pid PID: SIGTERM, then SIGKILL after 10 s; only ever a child of this script
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
on_host() {  # on_host N CMD...: run CMD in lab host N (1-based), as `berth lab` hosts allow: nsenter
    local pid
    pid=$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"]["hosts"][int(sys.argv[2]) - 1]["pid"])' "$work/lab.json" "$1")
    shift
    nsenter -t "$pid" -a env -i PATH=/usr/local/bin:/usr/bin:/bin "$@"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    step "tearing down"
    [ -n "$watch_pid" ] && stop_pid "$watch_pid"
    if [ -n "$registry_pid" ]; then stop_pid "$registry_pid"; say "registry (PID $registry_pid) stopped"; fi
    for sock in ${sockets:+"$sockets"/*}; do  # Ansible's ssh connection masters: closed before the hosts go
        [ -S "$sock" ] && ssh -o ControlPath="$sock" -O exit lab-host >/dev/null 2>&1
    done
    if [ "$lab_ours" = 1 ]; then
        if down=$(berth lab down --name "$LAB" 2>&1); then
            say "lab $LAB is down: hosts powered off, bridge bbr-$LAB and its state removed"
        else
            printf '%s\n' "$down"
            [ "$rc" = 0 ] && rc=1
        fi
    fi
    if [ -n "$work" ]; then rm -rf "$work" "$sockets"; say "temp dir $work removed"; fi
    if { [ "$lab_ours" = 1 ] && ip -o link show "bbr-$LAB" >/dev/null 2>&1; } ||
        { [ -n "$registry_pid" ] && kill -0 "$registry_pid" 2>/dev/null; }; then
        say "but something is left: see ip -o link, berth lab status --name $LAB"
        [ "$rc" = 0 ] && rc=1
    fi
    case $rc in
        0) ;;
        130 | 143) printf '\nthe demo was interrupted\n' >&2 ;;
        *) printf '\nthe demo FAILED (exit %s)\n' "$rc" >&2 ;;
    esac
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-demo.XXXXXX")
export DEMO_STATE=$work
mkdir -p "$work/logs" "$work/ansible-tmp" "$work/ansible_collections/berth"
ln -s "$REPO" "$work/ansible_collections/berth/fleet"
sockets=$work/cp  # ssh's connection sockets: their paths must fit in 108 bytes, so never deep
if [ ${#sockets} -gt 64 ]; then sockets=$(mktemp -d /tmp/berth-demo-cp.XXXXXX); else mkdir "$sockets"; fi

export ANSIBLE_COLLECTIONS_PATH=$work
export ANSIBLE_LOCAL_TEMP=$work/ansible-tmp
export ANSIBLE_SSH_CONTROL_PATH_DIR=$sockets
export ANSIBLE_PIPELINING=1 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_DEPRECATION_WARNINGS=0
unset ANSIBLE_STDOUT_CALLBACK  # the summaries read the default callback's output
cd "$work"

# ---------------------------------------------------------------------------------------------
step "1. A fleet: $HOSTS real systemd hosts on this machine (berth lab up)"
if berth --json lab status --name "$LAB" >"$work/stale.json" 2>/dev/null; then
    if ! render stale "$work/stale.json"; then
        echo "a lab named $LAB is up (another demo?): set BERTH_DEMO_LAB, or run: berth lab down --name $LAB" >&2
        exit 1
    fi
    say "removing what an interrupted demo left of lab $LAB"
    berth lab down --name "$LAB" >/dev/null
fi
show berth lab up --name "$LAB" --hosts "$HOSTS"
lab_ours=1
run lab-up ok berth --json lab up --name "$LAB" --hosts "$HOSTS"
cp "$work/logs/lab-up" "$work/lab.json"
render lab
eval "$(render lab-vars)"
export ANSIBLE_INVENTORY=$INVENTORY
export no_proxy="${no_proxy:+$no_proxy,}$GATEWAY" NO_PROXY="${NO_PROXY:+$NO_PROXY,}$GATEWAY"
REGISTRY=$GATEWAY:$REGISTRY_PORT

# ---------------------------------------------------------------------------------------------
step "2. Build the app: v1, v2 and a broken v3 from one Containerfile (berth image build)"
[ -x /bin/busybox ] || { echo "busybox is missing: run make deps (scripts/install-deps.sh)" >&2; exit 1; }
root=$work/rootfs  # the base image: a busybox root filesystem, imported as `base`
mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"
tar -C "$root" -cf "$work/base.tar" .
run import-base ok mberth --json image import -t base "$work/base.tar"
for v in 1 2 3; do
    port=80
    [ "$v" = 3 ] && port=81  # v3 listens on the wrong port: the health check on :80 never passes
    mkdir -p "$work/app-v$v/www"
    echo "v$v" >"$work/app-v$v/www/index.html"
    printf 'FROM base\nCOPY www /www\nCMD ["httpd", "-f", "-p", "%s", "-h", "/www"]\n' "$port" >"$work/app-v$v/Containerfile"
done
say "app-v1/Containerfile (v2 is the same; v3 listens on :81):"
sed 's/^/    /' "$work/app-v1/Containerfile"
show berth image build -t app:1 app-v1
for v in 1 2 3; do
    run "build-v$v" ok mberth --json image build -t "app:$v" "$work/app-v$v"
    note=''
    [ "$v" = 3 ] && note='broken: never healthy'
    render built "$v" "$work/logs/build-v$v" --note "$note"
done

# ---------------------------------------------------------------------------------------------
step "3. Push them to a registry on the lab's side of the machine (plain HTTP)"
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry/data
http:
  addr: $REGISTRY
EOF
docker-registry serve "$work/registry/config.yml" >"$work/logs/registry" 2>&1 &
registry_pid=$!
render wait-http "http://$REGISTRY/v2/" || { cat "$work/logs/registry"; exit 1; }
say "docker-registry (PID $registry_pid) listens on $REGISTRY: only the machine and the lab reach it"
show berth image push --insecure app:1 "$REGISTRY/demo/app:1"
for v in 1 2 3; do
    run "push-v$v" ok mberth --json image push --insecure "app:$v" "$REGISTRY/demo/app:$v"
    render pushed "$v" "$work/logs/push-v$v"
done

# ---------------------------------------------------------------------------------------------
step "4. Prepare the hosts (playbooks/hosts.yml: the role berth.fleet.host)"
say "installs the runtime in a venv on each host (wheels built once on the controller),"
say "berth-restore.service, and reports what each host can enforce"
show ansible-playbook berth.fleet.hosts
run hosts ok ansible-playbook berth.fleet.hosts
render prepared "$work/logs/hosts"

cat >"$work/app.yml" <<EOF
berth_app_name: shop
berth_app_keep: 3
berth_app_drain: 0.5
berth_app_containers:
  - role: web
    image: "$REGISTRY/demo/app:{{ app_version }}"
    ports: ["8080:80"]
    stop_signal: KILL
    health: {http: {port: 80, path: /}, interval: 100ms, timeout: 1s, retries: 3, min_healthy: 300ms, deadline: 10s}
EOF

pull() {  # pull V: every host pulls app:V from the registry
    mkdir -p "$work/pulled-v$1"
    show ansible-playbook scripts/demo_pull.yml -e demo_image="$REGISTRY/demo/app:$1"
    run "pull-v$1" ok ansible-playbook "$REPO/scripts/demo_pull.yml" \
        -e "demo_image=$REGISTRY/demo/app:$1" -e "demo_results=$work/pulled-v$1"
    render pulled "$1" "$work/pulled-v$1"
}
deploy() {  # deploy V EXPECT OUTCOME: roll app:V out (report ./vV.json)
    show ansible-playbook berth.fleet.deploy -e @app.yml -e app_version="$1" -e berth_rollout_id="v$1"
    run "deploy-v$1" "$2" ansible-playbook berth.fleet.deploy -e @app.yml -e "app_version=$1" \
        -e "berth_rollout_id=v$1" -e "{\"berth_rollout_batches\": $BATCHES}"
    render rollout "deploy v$1" "v$1.json" --version "$1" --batches "$BATCHES" --expect "$3"
}

# ---------------------------------------------------------------------------------------------
step "5. Roll v1 out: hosts pull it, a canary first, then batches (playbooks/deploy.yml)"
say "the app, as the role berth.fleet.app takes it (app.yml):"
sed 's/^/    /' "$work/app.yml"
pull 1
deploy 1 ok completed
render serving --expect v1
say "on $LAB-1, no daemon: the container is a systemd unit (berth status shop; systemctl)"
on_host 1 berth status shop | sed 's/^/    /'
on_host 1 systemctl list-units --no-pager --no-legend 'berth-*.service' | sed 's/^/    /'

# ---------------------------------------------------------------------------------------------
step "6. Roll v2 out while a client keeps asking every host"
pull 2
"$VENV/bin/python" "$REPO/scripts/demo_view.py" watch "$work/watch.log" &  # $! is python's own PID
watch_pid=$!
deploy 2 ok completed
stop_pid "$watch_pid"
watch_pid=''
render watched "$work/watch.log"
render serving --expect v2

# ---------------------------------------------------------------------------------------------
step "7. Try v3: its health check never passes"
pull 3
deploy 3 fail aborted
render serving --expect v2
say "the fleet stays on v2; ansible-playbook exited non-zero, as a CI job would want"

# ---------------------------------------------------------------------------------------------
step "8. Roll the fleet back to v1: undo rollout v2 (playbooks/rollback.yml)"
stop_pid "$registry_pid"
say "registry (PID $registry_pid) stopped first: a rollback needs none, kept revisions keep their images"
registry_pid=''
show ansible-playbook berth.fleet.rollback -e berth_app_name=shop -e berth_rollout_undo=v2
run rollback ok ansible-playbook berth.fleet.rollback -e berth_app_name=shop -e berth_rollout_undo=v2 \
    -e berth_rollout_id=undo-v2
render rollout "rollback" "undo-v2.json" --expect completed
render serving --expect v1
say "every revision $LAB-1 has seen (berth history shop):"
on_host 1 berth history shop | sed 's/^/    /'

# ---------------------------------------------------------------------------------------------
step "Summary: every host, every step"
render table
