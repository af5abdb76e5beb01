"""berth.fleet.unit_info and berth.fleet.runtime_info against a fake runtime."""

from __future__ import annotations

import pytest
from ansible_collections.berth.fleet.plugins.module_utils import _runtime
from ansible_collections.berth.fleet.plugins.modules import runtime_info, unit_info

WEB = {"unit": "web.service", "spec_hash": "h1", "spec": {"name": "web"}, "state": {"active_state": "active"}}
NOT_FOUND = {"kind": "not-found", "message": "no unit 'db'", "details": {}}

# (id, module args, runtime's envelope fields, argv the runtime must get, expected units)
INFO_CASES = [
    ("list", {}, {"command": "unit ls", "data": [WEB]}, ["unit", "ls", "--json"], [WEB]),
    (
        "list-as-mapping",
        {},
        {"command": "unit ls", "data": {"units": [WEB]}},
        ["unit", "ls", "--json"],
        [WEB],
    ),
    ("list-empty", {}, {"command": "unit ls", "data": []}, ["unit", "ls", "--json"], []),
    (
        "inspect",
        {"name": "web"},
        {"command": "unit inspect", "data": WEB},
        ["unit", "inspect", "web", "--json"],
        [WEB],
    ),
    (
        "inspect-unknown",
        {"name": "db"},
        {"command": "unit inspect", "ok": False, "error": NOT_FOUND},
        ["unit", "inspect", "db", "--json"],
        [],
    ),
    (
        "name-is-not-expanded",
        {"name": "$HOME"},
        {"command": "unit inspect", "ok": False, "error": NOT_FOUND},
        ["unit", "inspect", "$HOME", "--json"],
        [],
    ),
]


@pytest.mark.parametrize(
    "args, fields, argv, units", [c[1:] for c in INFO_CASES], ids=[c[0] for c in INFO_CASES]
)
def test_unit_info_reads_units(run_module, fake_runtime, args, fields, argv, units):
    fake_runtime.answer(rc=0 if fields.get("ok", True) else 3, **fields)
    run = run_module(unit_info, dict(args, runtime_path=str(fake_runtime.path)), check_mode=True)
    assert not run.failed, run.result
    assert run.result["changed"] is False
    assert run.result["units"] == units
    [call] = fake_runtime.calls()
    assert call["argv"] == argv
    assert call["stdin"] is None


def test_unit_info_fails_on_other_errors(run_module, fake_runtime):
    error = {"kind": "systemd-unavailable", "message": "no system bus", "details": {}}
    fake_runtime.answer(rc=7, command="unit ls", ok=False, error=error)
    run = run_module(unit_info, {"runtime_path": str(fake_runtime.path)})
    assert run.failed
    assert run.result["error"]["kind"] == "systemd-unavailable"
    assert run.result["msg"] == "no system bus"


VERSION = {"runtime": "0.1.0", "protocol": 1, "python": "3.11.2", "executable": "/usr/bin/python3"}

# (id, the version envelope's protocol, expected result items)
RUNTIME_INFO_CASES = [
    ("compatible", 1, {"installed": True, "compatible": True, "version": "0.1.0", "protocol": 1}),
    ("other-protocol-is-reported-not-failed", 2, {"installed": True, "compatible": False, "protocol": 2}),
]


@pytest.mark.parametrize(
    "protocol, expected", [c[1:] for c in RUNTIME_INFO_CASES], ids=[c[0] for c in RUNTIME_INFO_CASES]
)
def test_runtime_info(run_module, fake_runtime, protocol, expected):
    fake_runtime.answer(command="version", protocol=protocol, data=dict(VERSION, protocol=protocol))
    run = run_module(runtime_info, {"runtime_path": str(fake_runtime.path)})
    assert not run.failed, run.result
    assert {key: run.result[key] for key in expected} == expected
    assert run.result["runtime_path"] == str(fake_runtime.path)
    assert run.result["python_executable"] == "/usr/bin/python3"
    assert run.result["collection_protocol"] == 1
    assert fake_runtime.calls()[0]["argv"] == ["version", "--json"]


def test_runtime_info_reports_a_missing_runtime(run_module, monkeypatch, tmp_path):
    monkeypatch.setattr(_runtime, "FALLBACK_LOCATIONS", (str(tmp_path / "berth"),))
    run = run_module(runtime_info, {})
    assert not run.failed, run.result
    assert run.result["installed"] is False
    assert run.result["compatible"] is False
    assert "runtime_path" not in run.result
