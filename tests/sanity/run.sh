#!/usr/bin/env bash
# Collection-side checks of berth.fleet (`make sanity`, part of `make test`):
#   1. every module's and every role's documentation renders (ansible-doc);
#   2. the artifact builds, installs, holds only what it should, and its modules load;
#   3. ansible-test sanity passes, with empty ignore files;
#   4. ansible-lint passes with the production profile.
# Works on a copy of the files git knows (tracked, or untracked and not ignored), laid out as
# ansible_collections/berth/fleet as ansible-test requires; the checkout itself is not touched.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VENV:-$ROOT/.venv}
export PATH="$VENV/bin:$PATH"
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0

# Top-level entries the artifact may hold; anything else is a build_ignore gap in galaxy.yml.
ARTIFACT_ENTRIES="FILES.json COPYING MANIFEST.json README.md changelogs docs meta playbooks plugins roles runtime"
# Not Ansible content: the runtime and its unit tests (checked by ruff and mypy in `make lint`),
# the lab's pytest suites, benchmarks and scripts. ansible-test's pylint and pep8 rules are meant
# for plugins and would judge them by the wrong standard.
SANITY_EXCLUDES='^(runtime|bench|scripts|\.ci|tests/integration|tests/unit/runtime)/'

work=$(mktemp -d /tmp/berth-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

stage() {  # stage DEST [DROP_REGEX]: copy the files git knows to DEST/ansible_collections/berth/fleet
    local dest=$1/ansible_collections/berth/fleet drop=${2:-'^$'}
    mkdir -p "$dest"
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
        | { grep -zvE "$drop" || true; } \
        | tar -C "$ROOT" --null --ignore-failed-read -T - -cf - 2>/dev/null \
        | tar -C "$dest" -xf -
}

stage "$work/src"
collection="$work/src/ansible_collections/berth/fleet"
modules=()
for path in "$collection"/plugins/modules/*.py; do
    name=$(basename "$path" .py)
    [ "$name" = __init__ ] || modules+=("$name")
done
[ "${#modules[@]}" -gt 0 ] || fail "no modules in plugins/modules"

step "ansible-doc renders every module (${modules[*]})"
doc() {  # doc COLLECTIONS_PATH MODULE: render the module's page; ansible-doc exits 0 on "not found"
    if ! ANSIBLE_COLLECTIONS_PATH=$1 ansible-doc "berth.fleet.$2" >"$work/doc.txt" 2>&1 \
        || ! grep -q "^> MODULE berth.fleet.$2 " "$work/doc.txt"; then
        cat "$work/doc.txt"
        fail "ansible-doc berth.fleet.$2 (collections path $1)"
    fi
}
for module in "${modules[@]}"; do
    doc "$work/src" "$module"
done
listed=$(ANSIBLE_COLLECTIONS_PATH="$work/src" ansible-doc -t module -l berth.fleet 2>/dev/null | grep -c '^berth\.fleet\.' || true)
[ "$listed" -eq "${#modules[@]}" ] || fail "ansible-doc -l lists $listed modules, plugins/modules has ${#modules[@]}"
echo "ok: ${#modules[@]} modules"

roles=()
for path in "$collection"/roles/*/; do
    [ -d "$path" ] && roles+=("$(basename "$path")")
done
step "ansible-doc renders every role (${roles[*]:-none})"
role_doc() {  # role_doc COLLECTIONS_PATH ROLE: its argument specs must render, entry point main included
    if ! ANSIBLE_COLLECTIONS_PATH=$1 ansible-doc -t role "berth.fleet.$2" >"$work/doc.txt" 2>&1 \
        || ! grep -q "^> ROLE: .*berth\.fleet\.$2" "$work/doc.txt" \
        || ! grep -q "^ENTRY POINT: .*main" "$work/doc.txt"; then
        cat "$work/doc.txt"
        fail "ansible-doc -t role berth.fleet.$2 (collections path $1)"
    fi
}
for role in "${roles[@]}"; do
    [ -f "$collection/roles/$role/meta/argument_specs.yml" ] || fail "role $role has no meta/argument_specs.yml"
    role_doc "$work/src" "$role"
done
echo "ok: ${#roles[@]} roles"

step "ansible-galaxy collection build + install"
ansible-galaxy collection build --output-path "$work/dist" "$collection" >/dev/null
artifact=$(ls "$work"/dist/berth-fleet-*.tar.gz)
tar -tzf "$artifact" >"$work/artifact.txt"
entries=$(cut -d/ -f1 "$work/artifact.txt" | sort -u | tr '\n' ' ')
for entry in $entries; do
    [[ " $ARTIFACT_ENTRIES " == *" $entry "* ]] || fail "artifact holds $entry/: add it to build_ignore in galaxy.yml"
done
grep -q '^runtime/berth/cli/__init__.py$' "$work/artifact.txt" || fail "artifact lacks the runtime's sources"
if grep -E '(^|/)(__pycache__|\.pytest_cache|\.mypy_cache|\.ruff_cache)/|\.egg-info/|\.pyc$' "$work/artifact.txt"; then
    fail "artifact holds caches or build output"
fi
# An empty collections path: with the staged copy on it, "install" would find 0.1.0 there and do nothing.
ANSIBLE_COLLECTIONS_PATH="$work/none" ansible-galaxy collection install --offline -p "$work/installed" "$artifact" >/dev/null 2>&1
for module in "${modules[@]}"; do
    doc "$work/installed" "$module"
done
for role in "${roles[@]}"; do
    role_doc "$work/installed" "$role"
done
echo "ok: $(basename "$artifact"), $(wc -l <"$work/artifact.txt") entries: $entries"

step "ansible-test sanity"
for ignore in "$ROOT"/tests/sanity/ignore-*.txt; do
    if grep -v -e '^[[:space:]]*$' "$ignore"; then
        fail "$(basename "$ignore") must stay empty: fix what sanity reports instead (lines above)"
    fi
done
python_version=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# ansible-test puts pip into each sanity venv with a get-pip.py it downloads from a host this
# network cannot reach; tests/sanity/get_pip_offline.py does the same from ensurepip and the index.
# (ansible-test's pip pin is read from its source: it has no public way to tell it.)
pip_version=$("$VENV/bin/python" - <<'EOF' || true
import inspect, re
from ansible_test._internal import python_requirements
print(re.search(r"pip='([^']+)'", inspect.getsource(python_requirements.get_venv_packages)).group(1))
EOF
)
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ -n "$pip_version" ] && [ ! -s "$get_pip" ]; then
    mkdir -p "$(dirname "$get_pip")"
    cp "$ROOT/tests/sanity/get_pip_offline.py" "$get_pip"
fi
stage "$work/sanity" "$SANITY_EXCLUDES"
sanity_log="$work/sanity.log"
if ! (cd "$work/sanity/ansible_collections/berth/fleet" \
        && ansible-test sanity --python "$python_version" --requirements --color no >"$sanity_log" 2>&1); then
    cat "$sanity_log"
    fail "ansible-test sanity"
fi
grep -E '^(Running sanity test|WARNING: )' "$sanity_log" | grep -v 'locale' || true
echo "ok: ansible-test sanity (Python $python_version)"

step "ansible-lint (production profile)"
(cd "$ROOT" && ANSIBLE_COLLECTIONS_PATH="$work/src" ansible-lint --nocolor -q) || fail "ansible-lint"
echo "ok: ansible-lint"

printf '\nsanity: all collection checks passed\n'
