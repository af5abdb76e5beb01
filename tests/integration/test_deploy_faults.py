"""Faults during deployments: systemd reloading its units under a deploy and a rollback, and a
data dir that fills up in the middle of a deploy. Either way the deployment ends on a revision
it recorded, that revision serves, and nothing of an aborted one is left.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from deploy_helpers import prepare_host, serving, spec, write_spec
from labkit import Lab

from tests.reliability_plugin import recorder as _rec

pytestmark = pytest.mark.lab
RELOAD_PORT, FULL_PORT = 8083, 8084


def units(lab: Lab, host: str, deployment: str) -> list[str]:
    listing = f"systemctl list-units --all --plain --no-legend 'berth-{deployment}-*'"
    out = lab.run(host, ["sh", "-c", listing])
    return sorted(line.split()[0] for line in out.stdout.splitlines())


@pytest.fixture
def host(lab: Lab) -> str:
    h = lab.hosts[2]
    prepare_host(lab, h)
    return h


def test_daemon_reloads_during_deploys_and_rollbacks(
    pytestconfig: pytest.Config, lab: Lab, host: str
) -> None:
    rec = _rec(pytestconfig)
    rec.guard("lost-revision")
    docs = {v: spec(v, name="reload", port=RELOAD_PORT) for v in (1, 2)}
    paths = {v: write_spec(lab, host, doc, f"/var/lib/berth/reload-{v}.json") for v, doc in docs.items()}
    script = (
        "touch /run/flt-reload; "
        "( i=0; while [ -e /run/flt-reload ]; do systemctl daemon-reload; i=$((i+1)); sleep 0.1; done; "
        "echo $i > /run/flt-reloads ) & "
        f"sleep 0.2; berth deploy reload -f {paths[1]} >/dev/null && echo ok1; "
        f"berth deploy reload -f {paths[2]} >/dev/null && echo ok2; "
        "berth rollback reload >/dev/null && echo ok3; "
        "rm /run/flt-reload; wait; echo reloads=$(cat /run/flt-reloads)"
    )
    try:
        out = lab.run(host, ["sh", "-c", script], timeout=300).stdout.split()
        reloads = int(out[-1].split("=")[1])
        rec.faults(reloads, "systemctl daemon-reload during deploys and rollbacks")
        assert out[:-1] == ["ok1", "ok2", "ok3"] and reloads > 0, out
        status = lab.berth(host, "status", "reload")["data"]
        assert status["current"] == 1 and status["operation"] is None and status["serving"], status
        assert units(lab, host, "reload") == ["berth-reload-1-web.service"]
        assert serving(lab, host, port=RELOAD_PORT) == "v1"
    finally:
        lab.run(host, ["sh", "-c", "rm -f /run/flt-reload; berth undeploy reload >/dev/null 2>&1; true"])


@pytest.fixture
def small_disk(lab: Lab, host: str) -> Iterator[str]:
    """The host's data dir on a 160 MiB tmpfs of its own for the test, the usual one hidden
    under it (this host's mount namespace only) and back afterwards. The network state stays
    the host's (bind-mounted in): the bridges and nftables tables it describes are the host's."""
    lab.run(host, ["sh", "-c", "set -e; mkdir -p /run/flt-data; mount --bind /var/lib/berth /run/flt-data; "
                   # private, or the tmpfs below would propagate to this peer (systemd's / is shared)
                   "mount --make-private /run/flt-data; "
                   "mount -t tmpfs -o size=160m,mode=0755 berth-full /var/lib/berth; "
                   "mkdir -p /var/lib/berth/network /run/flt-data/network; "
                   "mount --bind /run/flt-data/network /var/lib/berth/network"])  # fmt: skip
    try:
        prepare_host(lab, host)
        yield host
    finally:
        lab.run(
            host,
            ["sh", "-c", "berth undeploy full >/dev/null 2>&1; rm -f /var/lib/berth/ballast; "
             "umount /var/lib/berth/network; umount /var/lib/berth; umount /run/flt-data; "
             "rmdir /run/flt-data; true"],
        )  # fmt: skip


# Seconds into a deploy at which the disk fills (every byte taken): before the first write,
# then at a different step each time (revision record, container, start, gate, switch, stop of
# the old revision, the record's last writes), before and after the commit point.
FILL_AT = [0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9, 1.2, 1.6, 2.2]


def consistent(lab: Lab, host: str) -> int:
    """One revision runs, holds the port, serves its own version, and is the one recorded."""
    status = lab.berth(host, "status", "full")["data"]
    assert status["operation"] is None and status["serving"], status
    current = status["current"]
    assert units(lab, host, "full") == [f"berth-full-{current}-web.service"], status
    revisions = {r["number"]: r for r in lab.berth(host, "history", "full")["data"]["revisions"]}
    version = revisions[current]["references"]["web"].split(":")[-1]
    assert serving(lab, host, port=FULL_PORT) == f"v{version}", status
    return int(version)


def test_a_full_disk_during_a_deploy_ends_on_one_consistent_revision(
    pytestconfig: pytest.Config, lab: Lab, small_disk: str
) -> None:
    rec = _rec(pytestconfig)
    rec.guard("lost-revision")
    host = small_disk
    docs = {v: spec(v, name="full", port=FULL_PORT) for v in (1, 2)}
    paths = {v: write_spec(lab, host, doc, f"/var/lib/berth/full-{v}.json") for v, doc in docs.items()}
    lab.berth(host, "deploy", "full", "-f", paths[1])
    version, failed = consistent(lab, host), 0
    for at in FILL_AT:
        target = 2 if version == 1 else 1
        script = (
            "b=/var/lib/berth/ballast; "
            f"( sleep {at}; fallocate -l $(df -B1 --output=avail /var/lib/berth | tail -1) $b 2>/dev/null "
            "|| dd if=/dev/zero of=$b bs=4k 2>/dev/null ) & "
            f"berth --json deploy full -f {paths[target]} >/run/flt-out.json 2>/run/flt-err.txt; rc=$?; "
            "wait; "
            "rm -f $b; echo rc=$rc"
        )
        rc = lab.run(host, ["sh", "-c", script]).stdout.split()[-1]
        rec.faults(1, "full disk during a deploy")
        if rc != "rc=0":
            failed += 1
            out = lab.run(host, ["sh", "-c", "cat /run/flt-out.json; cat /run/flt-err.txt >&2"])
            assert out.stdout.strip(), (at, rc, out.stderr)  # a typed error, never a traceback
            error = json.loads(out.stdout)["error"]
            assert error["kind"] == "deploy-failed", (at, error)
            assert "No space left on device" in error["message"], (at, error)
            assert serving(lab, host, port=FULL_PORT) in ("v1", "v2"), (at, error)  # still served
            lab.berth(host, "restore")  # finishes what the full disk cut short (an undo, a switch)
        version = consistent(lab, host)
    assert failed >= 1  # at 0 s nothing fitted
    # Space again: a deploy of each version works, and the store is intact.
    for v in (2, 1):
        lab.berth(host, "deploy", "full", "-f", paths[v])
        assert consistent(lab, host) == v
    lab.berth(host, "image", "verify")
