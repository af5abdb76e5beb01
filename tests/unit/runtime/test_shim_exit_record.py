"""ExecStopPost's record-exit.sh writes exactly what the shim's Python record-exit writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from berth.containers.config import RECORD_EXIT, SHIM

CASES = [
    {"SERVICE_RESULT": "success", "EXIT_CODE": "exited", "EXIT_STATUS": "0", "INVOCATION_ID": "0f" * 16},
    {"SERVICE_RESULT": "exit-code", "EXIT_CODE": "exited", "EXIT_STATUS": "3"},
    {"SERVICE_RESULT": "signal", "EXIT_CODE": "killed", "EXIT_STATUS": "TERM"},
    {"SERVICE_RESULT": "oom-kill", "EXIT_CODE": "killed", "EXIT_STATUS": "KILL"},
    {"EXIT_STATUS": "", "INVOCATION_ID": 'odd "quoted" \\ value'},
    {},
]


@pytest.mark.parametrize("env", CASES)
def test_sh_and_python_write_the_same_record(env: dict[str, str], tmp_path: Path) -> None:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    subprocess.run(["/bin/sh", str(RECORD_EXIT), str(tmp_path / "sh.json")], env={**base, **env}, check=True)
    python = [sys.executable, "-S", str(SHIM), "record-exit", "/nonexistent", str(tmp_path / "py.json")]
    subprocess.run(python, env={**base, **env}, check=True)
    sh, py = (tmp_path / "sh.json").read_text(), (tmp_path / "py.json").read_text()
    assert sh == py
    doc = json.loads(sh)
    assert doc["exit_status"] == env.get("EXIT_STATUS")
    assert doc["oom_killed"] is (env.get("SERVICE_RESULT") == "oom-kill" or doc["oom_kills"] > 0)
    assert not list(tmp_path.glob("*.tmp"))


def test_python_record_exit_reads_the_exit_file_from_the_config(tmp_path: Path) -> None:
    """Units started by older versions run `record-exit CONFIG` without the exit file's path."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"exit_file": str(tmp_path / "exit.json"), "name": "x"}))
    env = {"SERVICE_RESULT": "success", "EXIT_CODE": "exited", "EXIT_STATUS": "0"}
    subprocess.run([sys.executable, "-S", str(SHIM), "record-exit", str(config)], env=env, check=True)
    assert json.loads((tmp_path / "exit.json").read_text())["service_result"] == "success"
