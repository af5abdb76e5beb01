"""The ops pipeline of docs/deployments.md runs as written: the block is taken from the page and
run with bash, as a CI job would (its own lab `ops`, removed by the block's trap)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from labkit import REPO, berth

pytestmark = pytest.mark.lab
PAGE = REPO / "docs" / "deployments.md"


def pipeline() -> str:
    section = PAGE.read_text().split("## An ops pipeline, runnable against a lab", 1)[1]
    found = re.search(r"^```sh\n(.*?)^```$", section, re.S | re.M)
    assert found, f"no sh block under the pipeline heading of {PAGE}"
    return found.group(1)


def test_the_documented_pipeline_deploys_fails_on_the_canary_and_undoes(tmp_path: Path) -> None:
    if berth("lab", "status", "--name", "ops", check=False)["exit_code"] == 0:
        pytest.skip("a lab named ops is up: the documented job would take it over and remove it")
    script = tmp_path / "pipeline.sh"
    script.write_text(pipeline() + '\necho "fleet-revision-ok"\n')
    try:
        proc = subprocess.run(["bash", str(script)], cwd=REPO, capture_output=True, text=True, timeout=900)
    finally:
        berth("lab", "down", "--name", "ops", check=False)  # the block's trap did it unless it was killed
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.stdout.rstrip().endswith("fleet-revision-ok"), proc.stdout[-2000:]
    # build-3's report, as the job printed it: the canary alone, failed at its gate and back on 1.
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"host"')]
    assert [(r["host"], r["result"], r["revision_after"]) for r in rows] == [("ops-1", "failed", 1)], rows
    assert "failed 3 health probes" in rows[0]["rollback_reason"], rows
    assert not list((REPO).glob("build-*.json")), "the job wrote into the checkout"
