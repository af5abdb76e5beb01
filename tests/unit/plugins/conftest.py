"""Fixtures for the modules' unit tests: a fake `berth` executable and an in-process module runner.

The tests run the real modules and module_utils; only the host runtime is replaced, by a script
that records how it was called and prints a canned JSON envelope.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

COLLECTION_ROOT = Path(__file__).resolve().parents[3]


def _make_collection_importable() -> None:
    """Plain pytest (not `ansible-test units`) needs `ansible_collections.berth.fleet` on sys.path."""
    try:
        if importlib.util.find_spec("ansible_collections.berth.fleet") is not None:
            return
    except ModuleNotFoundError:
        pass
    root = Path(tempfile.mkdtemp(prefix="berth-collections-"))
    atexit.register(shutil.rmtree, root, True)
    namespace = root / "ansible_collections" / "berth"
    namespace.mkdir(parents=True)
    (namespace / "fleet").symlink_to(COLLECTION_ROOT)
    sys.path.insert(0, str(root))


_make_collection_importable()

from ansible.module_utils.testing import patch_module_args  # noqa: E402  (needs the path set-up)

FAKE_RUNTIME = """#!{python}
import json, sys
call = {{"argv": sys.argv[1:], "stdin": sys.stdin.read() if "-" in sys.argv[1:] else None}}
with open({log!r}, "a") as log:
    log.write(json.dumps(call) + "\\n")
sys.stdout.write({stdout!r})
sys.stderr.write({stderr!r})
sys.exit({rc})
"""


class FakeRuntime:
    """A `berth` executable that answers every call with one canned reply."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "berth"
        self.log = directory / "calls.jsonl"

    def answer(self, rc=0, **fields):
        """Reply with a protocol-1 success envelope, changed by `fields` (`ok=False` for a failure)."""
        out = {
            "protocol": 1,
            "runtime": "0.1.0",
            "command": "unit apply",
            "ok": True,
            "changed": False,
            "actions": [],
            "warnings": [],
            "data": None,
        }
        out.update(fields)
        return self.reply(out, rc=rc)

    def reply(self, stdout="", rc=0, stderr=""):
        """Reply with `stdout` as is (a str) or as JSON (anything else)."""
        if not isinstance(stdout, str):
            stdout = json.dumps(stdout) + "\n"
        self.path.write_text(
            FAKE_RUNTIME.format(python=sys.executable, log=str(self.log), stdout=stdout, stderr=stderr, rc=rc)
        )
        self.path.chmod(0o755)
        return self

    def calls(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Ansible keeps module warnings in a process-wide table: one test's must not leak into the next."""
    from ansible.module_utils.common import warnings

    monkeypatch.setattr(warnings, "_global_warnings", {})
    monkeypatch.setattr(warnings, "_global_deprecations", {})


@pytest.fixture
def fake_runtime(tmp_path):
    return FakeRuntime(tmp_path)


class ModuleRun:
    """What a module printed when it exited: its result and whether it failed."""

    def __init__(self, result):
        self.result = result
        self.failed = bool(result.get("failed"))


@pytest.fixture
def run_module(capsys, monkeypatch):
    """Run `module.main()` in-process with `args`; return its parsed JSON result."""

    def run(module, args, check_mode=False, diff=False):
        monkeypatch.setenv("PATH", os.defpath)
        module_args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        with patch_module_args(module_args), pytest.raises(SystemExit):
            module.main()
        return ModuleRun(json.loads(capsys.readouterr().out))

    return run
