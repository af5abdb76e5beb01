"""Deployments across a 3-host lab with playbooks/deploy.yml and rollback.yml: v1, v2, a broken
v3 that rolls itself back on the canary and stops the rollout, an idempotent redeploy, a fleet
rollback to v1 with no registry anywhere, and retention that prunes only what nobody needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import prepare_host, serving
from labkit import REPO, Lab

pytestmark = pytest.mark.lab

APP = """\
berth_app_name: shop
berth_app_keep: 3
berth_app_drain: 0.5
berth_app_containers:
  - role: web
    image: "app:{{ app_version }}"
    ports: ["8080:80"]
    stop_signal: KILL
    health:
      {http: {port: 80, path: /}, interval: 100ms, timeout: 1s, retries: 3, min_healthy: 300ms, deadline: 10s}
"""


@pytest.fixture(scope="module")
def fleet(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    for host in lab.hosts:
        prepare_host(lab, host)
    work = tmp_path_factory.mktemp("deploy")
    (work / "app.yml").write_text(APP)
    try:
        yield work
    finally:  # the lab is shared with later modules: leave no deployment holding a port
        for host in lab.hosts:
            lab.run(host, ["sh", "-c", "berth undeploy shop >/dev/null 2>&1; true"])


def play(lab: Lab, work: Path, book: str, *extra: str, check: bool = True) -> tuple[int, dict[str, Any]]:
    rid = next(e.split("=", 1)[1] for e in extra if e.startswith("berth_rollout_id="))
    report = work / f"{rid}.json"
    app = ["-e", f"@{work / 'app.yml'}"] if book == "deploy.yml" else ["-e", "berth_app_name=shop"]
    proc = lab.ansible_playbook(
        REPO / "playbooks" / book,
        "-i", lab.inventory, *app, "-e", f"berth_rollout_report={report}",
        *[x for e in extra for x in ("-e", e)],
        check=check,
    )  # fmt: skip
    return proc.returncode, json.loads(report.read_text())


def revisions(lab: Lab) -> dict[str, int | None]:
    return {h: lab.berth(h, "status", "shop")["data"]["current"] for h in lab.hosts}


def test_rollouts_canary_and_fleet_rollback(lab: Lab, fleet: Path) -> None:
    rc, r1 = play(lab, fleet, "deploy.yml", "app_version=1", "berth_rollout_id=r1")
    assert r1["completed"] and {h["result"] for h in r1["hosts"]} == {"deployed"}
    assert {serving(lab, h) for h in lab.hosts} == {"v1"}

    rc, r2 = play(lab, fleet, "deploy.yml", "app_version=2", "berth_rollout_id=r2")
    assert r2["completed"] and all(
        h["revision_before"] == 1 and h["revision_after"] == 2 for h in r2["hosts"]
    )
    assert all(
        h["health"]["result"] == "passed" and h["digests"]["web"].startswith("sha256:") for h in r2["hosts"]
    )
    assert {serving(lab, h) for h in lab.hosts} == {"v2"}

    # v3 never passes its gate: the canary rolls itself back, no other host is touched.
    rc, r3 = play(lab, fleet, "deploy.yml", "app_version=3", "berth_rollout_id=r3", check=False)
    assert rc != 0 and not r3["completed"] and r3["aborted"]
    canary = r3["hosts"][0]
    assert len(r3["hosts"]) == 1 and canary["result"] == "failed" and canary["revision_after"] == 2
    assert "health gate" in canary["rollback_reason"] and canary["health"]["result"] == "failed"
    assert sorted(r3["not_started"]) == sorted(set(lab.hosts) - {canary["host"]})
    assert set(revisions(lab).values()) == {2} and {serving(lab, h) for h in lab.hosts} == {"v2"}
    failed = lab.berth(canary["host"], "history", "shop")["data"]
    assert [e["result"] for e in failed["events"] if e["rollout"] == "r3"] == ["rolled-back"]

    # The same content again changes nothing anywhere.
    proc = lab.ansible_playbook(
        REPO / "playbooks" / "deploy.yml", "-i", lab.inventory, "-e", f"@{fleet / 'app.yml'}",
        "-e", "app_version=2", "-e", "berth_rollout_id=r2again", "-e", f"berth_rollout_report={fleet}/x.json",
    )  # fmt: skip
    for host in lab.hosts:
        assert host in proc.stdout and "changed=0" in proc.stdout.split(host)[-1].split("\n")[0]

    # Undo rollout r2 with no registry anywhere (there never was one: images are only local).
    # The kept revisions' images are protected: the store refuses to remove them.
    for host in lab.hosts:
        busy = lab.berth(host, "image", "rm", "app:1", check=False)
        assert busy["error"]["kind"] == "conflict" and "deployment" in busy["error"]["message"]
    rc, back = play(lab, fleet, "rollback.yml", "berth_rollout_undo=r2", "berth_rollout_id=undo-r2")
    assert back["completed"] and {h["revision_after"] for h in back["hosts"]} == {1}
    assert {serving(lab, h) for h in lab.hosts} == {"v1"}


def test_a_failing_batch_rolls_back_hosts_already_moved(lab: Lab, fleet: Path) -> None:
    """Canary passes, the next batch fails: every host of this rollout goes back."""
    last = lab.hosts[-1]
    lab.run(last, ["berth", "image", "tag", "app:3", "app:9"])  # only the last host gets a broken v9
    for host in lab.hosts[:-1]:
        lab.run(host, ["berth", "image", "tag", "app:2", "app:9"])
    before = revisions(lab)
    rc, r9 = play(lab, fleet, "deploy.yml", "app_version=9", "berth_rollout_id=r9",
                  '{"berth_rollout_batches": [1, 2]}', check=False)  # fmt: skip
    assert rc != 0 and r9["aborted"]
    results = {h["host"]: h["result"] for h in r9["hosts"]}
    assert results[last] == "failed" and set(results.values()) <= {"failed", "rolled-back"}
    assert revisions(lab) == before


def test_retention_prunes_only_what_no_kept_revision_needs(lab: Lab, fleet: Path) -> None:
    host = lab.hosts[0]
    hist = lab.berth(host, "history", "shop")["data"]
    kept = {r["number"]: r for r in hist["revisions"] if r["state"] in ("active", "retired")}
    assert len(kept) <= 3
    lab.berth(host, "image", "prune", "--all")
    images = {i["digest"] for i in lab.berth(host, "image", "ls")["data"]["images"]}
    for r in kept.values():
        assert set(r["digests"].values()) <= images  # every kept revision can still start
    for p in hist["pruned"]:
        for d in p["images"].values():
            if all(d["digest"] not in r["digests"].values() for r in kept.values()):
                assert d["digest"] not in images
    uses = lab.run(host, ["ls", "/var/lib/berth/images/uses"]).stdout.split()
    assert {u for u in uses if u.startswith("deployment-shop-")} == {
        f"deployment-shop-{n}.json" for n in kept
    }
