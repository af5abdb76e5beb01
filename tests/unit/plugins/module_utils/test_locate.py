"""Where the modules look for the host runtime, in which order, and what they say when it is not there."""

from __future__ import annotations

import os

import pytest
from ansible_collections.berth.fleet.plugins.module_utils import _runtime


def executable(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """Two PATH dirs and two fallback locations, all empty until a test fills one."""
    monkeypatch.setattr(
        _runtime, "FALLBACK_LOCATIONS", (str(tmp_path / "local/berth"), str(tmp_path / "opt/berth"))
    )
    return tmp_path


# (id, files to create as executables, runtime_path option, the expected pick)
CASES = [
    ("runtime-path-wins", ["given/berth", "a/berth", "local/berth"], "given/berth", "given/berth"),
    ("first-on-path", ["a/berth", "b/berth", "local/berth"], None, "a/berth"),
    ("later-on-path", ["b/berth", "local/berth"], None, "b/berth"),
    ("path-before-fallbacks", ["b/berth", "opt/berth"], None, "b/berth"),
    ("first-fallback", ["local/berth", "opt/berth"], None, "local/berth"),
    ("second-fallback", ["opt/berth"], None, "opt/berth"),
]


@pytest.mark.parametrize("files, option, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_locate_order(tree, files, option, expected):
    for name in files:
        executable(tree / name)
    search_path = os.pathsep.join([str(tree / "a"), str(tree / "b")])
    runtime_path = str(tree / option) if option else None
    assert _runtime.locate(runtime_path, search_path) == str(tree / expected)


def test_not_executable_is_not_a_runtime(tree):
    (tree / "local").mkdir()
    (tree / "local/berth").write_text("not executable")
    with pytest.raises(_runtime.RuntimeMissing):
        _runtime.locate(None, "")


@pytest.mark.parametrize(
    "option", [None, "missing/berth", "local"], ids=["search", "runtime-path", "a-directory"]
)
def test_missing_runtime_names_the_host_role(tree, option):
    (tree / "local").mkdir()
    with pytest.raises(_runtime.RuntimeMissing) as caught:
        _runtime.locate(str(tree / option) if option else None, str(tree / "a"))
    assert "berth.fleet.host" in caught.value.message
    assert caught.value.to_result()["error"]["kind"] == "runtime-missing"
