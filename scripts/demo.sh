#!/usr/bin/env bash
# `make demo`: a local fleet of three real systemd hosts, Berth driving them with Ansible.
# Everything the demo starts is torn down on exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-$PWD/.venv}
LAB=${BERTH_DEMO_LAB:-demo}
HOSTS=${BERTH_DEMO_HOSTS:-3}
export PATH="$VENV/bin:$PATH"

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
cleanup() {
    echo
    echo "== tearing the lab down"
    berth lab down --name "$LAB" || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/ansible_collections/berth"
ln -s "$PWD" "$work/ansible_collections/berth/fleet"
export ANSIBLE_COLLECTIONS_PATH="$work"
export ANSIBLE_LOCAL_TEMP="$work/ansible-tmp"
export ANSIBLE_NOCOLOR=1

step() { printf '\n== %s\n' "$*"; }

step "booting $HOSTS systemd hosts (berth lab up)"
t0=$(date +%s%N)
berth lab up --name "$LAB" --hosts "$HOSTS"
echo "booted in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
inventory=$(berth lab inventory --name "$LAB")

step "every host answers Ansible over SSH"
ansible berth_lab -i "$inventory" -m ansible.builtin.ping -o

step "berth.fleet.unit: a transient service with cgroup limits on every host, over D-Bus"
ansible-playbook -i "$inventory" playbooks/demo_units.yml

step "the same play again: nothing to change (idempotent)"
ansible-playbook -i "$inventory" playbooks/demo_units.yml | tail -n 6
