"""berth.fleet.rollout_report, run by ansible-playbook on the controller: the file it writes,
check mode (nothing written), diff, idempotency, and clear errors that leave nothing behind.
No lab: the module never touches a host (the play targets localhost)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import yaml
from labkit import VENV

REPORT = {"rollout": "build-7", "completed": True, "hosts": [{"host": "h1", "revision_after": 2}]}


def play(collections_path: str, tmp: Path, args: dict[str, Any], *flags: str) -> dict[str, Any]:
    """Run one rollout_report task on localhost; return its registered result (written by a
    second task into a directory of its own, also under --check)."""
    book, result = tmp.parent / f"{tmp.name}-play.yml", tmp.parent / f"{tmp.name}-result.json"
    tasks = [
        {"name": "report", "berth.fleet.rollout_report": args, "register": "out", "ignore_errors": True},
        {"name": "keep the result", "check_mode": False, "diff": False,
         "ansible.builtin.copy": {"content": "{{ out | to_json }}", "dest": str(result)}},
    ]  # fmt: skip
    book.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": collections_path, "ANSIBLE_LOCALHOST_WARNING": "False"}
    proc = subprocess.run(
        [str(VENV / "bin" / "ansible-playbook"), str(book), *flags],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out: dict[str, Any] = json.loads(result.read_text())
    return out


def test_writes_the_report_atomically_and_only_when_it_changes(collections_path: str, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    path = reports / "build-7.json"
    args = {"path": str(path), "report": REPORT}
    checked = play(collections_path, reports, args, "--check", "--diff")
    assert checked["changed"] and not path.exists(), checked  # check mode: the plan, nothing written
    assert json.loads(checked["diff"]["after"]) == REPORT and checked["diff"]["before"] == ""

    first = play(collections_path, reports, args)
    assert first["changed"] and first["path"] == str(path)
    assert json.loads(path.read_text()) == REPORT and path.read_text().endswith("}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in reports.iterdir()] == ["build-7.json"]  # no temp file left

    again = play(collections_path, reports, args, "--diff")
    assert not again["changed"] and "diff" not in again, again  # idempotent: same report, no write

    changed = play(collections_path, reports, {**args, "report": {**REPORT, "completed": False}}, "--diff")
    assert changed["changed"] and '"completed": true' in changed["diff"]["before"]
    assert json.loads(path.read_text())["completed"] is False


def test_bad_input_is_named_and_writes_nothing(collections_path: str, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    missing = reports / "no-such-dir" / "r.json"
    failed = play(collections_path, reports, {"path": str(missing), "report": REPORT})
    assert failed.get("failed") and f"no directory {missing.parent}" in failed["msg"], failed
    target = str(reports / "r.json")
    bad_mode = play(collections_path, reports, {"path": target, "report": REPORT, "mode": "rw"})
    assert bad_mode.get("failed") and "mode 'rw' is not an octal permission" in bad_mode["msg"], bad_mode
    no_report = play(collections_path, reports, {"path": target})
    assert no_report.get("failed") and "report" in no_report["msg"], no_report
    assert list(reports.iterdir()) == []
