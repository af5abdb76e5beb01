"""berth.fleet.unit against a fake runtime: what it sends, and what it makes of each answer."""

from __future__ import annotations

import json

import pytest
from ansible_collections.berth.fleet.plugins.modules import unit

COMMAND = ["/usr/bin/sleep", "infinity"]
APPLY = ["unit", "apply", "-f", "-", "--json"]
RUNNING = {
    "active_state": "active",
    "sub_state": "running",
    "main_pid": 4242,
    "result": "success",
    "exec_main_status": 0,
    "control_group": "/berth.slice/web.service",
}
DATA = {"unit": "web.service", "spec_hash": "h1", "state": RUNNING, "check_mode": False}
DIFF = {"before": {"state": None, "spec": None}, "after": {"state": "started", "spec": {"name": "web"}}}
START = {"action": "start", "target": "web.service", "detail": {"spec_hash": "h1"}}


# (id, module args, what the runtime sends back, the spec the runtime must get on stdin)
SPEC_CASES = [
    (
        "only-what-is-set",
        {"name": "web", "command": COMMAND},
        {"name": "web", "state": "started", "command": COMMAND},
    ),
    (
        "every-option",
        {
            "name": "web",
            "command": COMMAND,
            "state": "stopped",
            "description": "Web",
            "slice": "berth.slice",
            "environment": {"PORT": 8080, "MODE": "prod", "RATIO": 0.5},
            "working_directory": "~",
            "user": "www-data",
            "resources": {
                "memory_max": "64M",
                "memory_swap_max": "0",
                "cpu_quota": "20%",
                "cpu_weight": 50,
                "tasks_max": "infinity",
            },
            "properties": {"LimitNOFILE": 1024},
        },
        {
            "name": "web",
            "command": COMMAND,
            "state": "stopped",
            "description": "Web",
            "slice": "berth.slice",
            "environment": {"PORT": "8080", "MODE": "prod", "RATIO": "0.5"},
            "working_directory": "~",
            "user": "www-data",
            "resources": {
                "memory_max": "64M",
                "memory_swap_max": "0",
                "cpu_quota": "20%",
                "cpu_weight": 50,
                "tasks_max": "infinity",
            },
            "properties": {"LimitNOFILE": 1024},
        },
    ),
    (
        "empty-resources-left-out",
        {"name": "web", "command": COMMAND, "resources": {}},
        {"name": "web", "state": "started", "command": COMMAND},
    ),
    (
        "int-memory-is-bytes-string",
        {"name": "web", "command": COMMAND, "resources": {"memory_max": 67108864}},
        {"name": "web", "state": "started", "command": COMMAND, "resources": {"memory_max": "67108864"}},
    ),
    ("absent-needs-no-command", {"name": "web", "state": "absent"}, {"name": "web", "state": "absent"}),
]


@pytest.mark.parametrize("args, spec", [c[1:] for c in SPEC_CASES], ids=[c[0] for c in SPEC_CASES])
def test_spec_goes_to_stdin_never_argv(run_module, fake_runtime, args, spec):
    fake_runtime.answer(data=DATA)
    run = run_module(unit, dict(args, runtime_path=str(fake_runtime.path)))
    assert not run.failed, run.result
    [call] = fake_runtime.calls()
    assert call["argv"] == APPLY
    assert json.loads(call["stdin"]) == spec


# (id, runtime's envelope fields, check_mode, diff, the module result's expected items)
OUTCOME_CASES = [
    (
        "created",
        {"changed": True, "actions": [START], "data": DATA, "diff": DIFF},
        False,
        False,
        {"changed": True, "actions": [START], "unit": "web.service", "spec_hash": "h1", "status": RUNNING},
    ),
    (
        "unchanged",
        {"changed": False, "data": DATA, "diff": {"before": DIFF["after"], "after": DIFF["after"]}},
        False,
        False,
        {"changed": False, "actions": [], "unit": "web.service", "status": RUNNING},
    ),
    (
        "diff-when-asked",
        {"changed": True, "actions": [START], "data": DATA, "diff": DIFF},
        False,
        True,
        {"changed": True, "diff": DIFF},
    ),
    (
        "check-mode-reports-the-plan",
        {"changed": True, "actions": [START], "data": dict(DATA, check_mode=True, state=None), "diff": DIFF},
        True,
        True,
        {"changed": True, "actions": [START], "status": None, "diff": DIFF},
    ),
    (
        "absent-has-no-state",
        {
            "changed": True,
            "actions": [{"action": "remove", "target": "web.service"}],
            "data": {"unit": "web.service", "spec_hash": None, "state": None},
        },
        False,
        False,
        {"changed": True, "spec_hash": None, "status": None},
    ),
]


@pytest.mark.parametrize(
    "fields, check_mode, diff, expected", [c[1:] for c in OUTCOME_CASES], ids=[c[0] for c in OUTCOME_CASES]
)
def test_result_mirrors_the_runtime(run_module, fake_runtime, fields, check_mode, diff, expected):
    fake_runtime.answer(**fields)
    args = {"name": "web", "command": COMMAND, "runtime_path": str(fake_runtime.path)}
    run = run_module(unit, args, check_mode=check_mode, diff=diff)
    assert not run.failed, run.result
    assert {key: run.result.get(key) for key in expected} == expected
    assert ("diff" in run.result) == diff
    assert ("--check" in fake_runtime.calls()[0]["argv"]) == check_mode


def warning_texts(result):
    """Warnings as text: ansible-core 2.19 serialises them as WarningSummary objects."""
    return [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings", [])]


def test_runtime_warnings_become_ansible_warnings(run_module, fake_runtime):
    fake_runtime.answer(data=DATA, warnings=["cpu_quota is not enforced on this host"])
    run = run_module(unit, {"name": "web", "command": COMMAND, "runtime_path": str(fake_runtime.path)})
    assert not run.failed, run.result
    assert warning_texts(run.result) == ["cpu_quota is not enforced on this host"]


PROTOCOL_2 = {"protocol": 2, "runtime": "0.9.0", "command": "unit apply", "ok": True, "changed": False}
TRACEBACK = "Traceback (most recent call last):\n  ...\nKeyError: 'x'\n"

# (id, runtime's reply: stdout, rc, stderr; expected error kind, changed, words the msg must hold)
FAILURE_CASES = [
    (
        "runtime-refuses-input",
        (
            {
                "protocol": 1,
                "runtime": "0.1.0",
                "command": "unit apply",
                "ok": False,
                "error": {
                    "kind": "invalid-input",
                    "message": "memory_max: '64Q' is not a size",
                    "details": {"field": "memory_max"},
                },
            },
            2,
            "",
        ),
        "invalid-input",
        False,
        ["memory_max: '64Q' is not a size"],
    ),
    (
        "partly-applied",
        (
            {
                "protocol": 1,
                "runtime": "0.1.0",
                "command": "unit apply",
                "ok": False,
                "changed": True,
                "actions": [{"action": "stop", "target": "web.service"}],
                "error": {
                    "kind": "job-failed",
                    "message": "start of web.service failed: exit-code",
                    "details": {},
                },
            },
            8,
            "",
        ),
        "job-failed",
        True,
        ["start of web.service failed"],
    ),
    (
        "other-protocol",
        (PROTOCOL_2, 0, ""),
        "protocol-mismatch",
        False,
        ["speaks protocol 2", "this collection speaks protocol 1", "berth.fleet.host"],
    ),
    (
        "old-runtime-usage-error",
        ("", 2, "berth: error: argument COMMAND: invalid choice: 'unit'\n"),
        "bad-response",
        False,
        ["did not understand `berth unit apply -f -`", "invalid choice", "berth.fleet.host"],
    ),
    ("crash", ("", 1, TRACEBACK), "bad-response", False, ["exit code 1", "KeyError: 'x'"]),
    ("not-json", ("hello\n", 0, ""), "bad-response", False, ["did not print a Berth JSON result"]),
    (
        "neither-ok-nor-error",
        ({"protocol": 1, "runtime": "0.1.0"}, 0, ""),
        "bad-response",
        False,
        ["neither ok nor a typed error"],
    ),
]


@pytest.mark.parametrize(
    "reply, kind, changed, words", [c[1:] for c in FAILURE_CASES], ids=[c[0] for c in FAILURE_CASES]
)
def test_failures_are_typed_and_say_why(run_module, fake_runtime, reply, kind, changed, words):
    stdout, rc, stderr = reply
    fake_runtime.reply(stdout, rc=rc, stderr=stderr)
    run = run_module(unit, {"name": "web", "command": COMMAND, "runtime_path": str(fake_runtime.path)})
    assert run.failed
    assert run.result["error"]["kind"] == kind
    assert run.result["changed"] is changed
    for word in words:
        assert word in run.result["msg"]


# (id, module args; the runtime must never be called, and the msg must hold these words)
REFUSED_CASES = [
    (
        "started-without-command",
        {"name": "web"},
        ["state is started but all of the following are missing: command"],
    ),
    (
        "unknown-state",
        {"name": "web", "state": "running", "command": COMMAND},
        ["value of state must be one of"],
    ),
    (
        "bool-env",
        {"name": "web", "command": COMMAND, "environment": {"DEBUG": True}},
        ["environment.DEBUG is the boolean True", "'true'"],
    ),
    (
        "null-env",
        {"name": "web", "command": COMMAND, "environment": {"TOKEN": None}},
        ["environment.TOKEN has no value"],
    ),
    (
        "nested-env",
        {"name": "web", "command": COMMAND, "environment": {"A": [1]}},
        ["environment.A must be a string, not a list"],
    ),
    (
        "bad-weight",
        {"name": "web", "command": COMMAND, "resources": {"cpu_weight": "heavy"}},
        ["cpu_weight", "int"],
    ),
]


@pytest.mark.parametrize("args, words", [c[1:] for c in REFUSED_CASES], ids=[c[0] for c in REFUSED_CASES])
def test_bad_options_never_reach_the_runtime(run_module, fake_runtime, args, words):
    fake_runtime.answer(data=DATA)
    run = run_module(unit, dict(args, runtime_path=str(fake_runtime.path)))
    assert run.failed
    assert fake_runtime.calls() == []
    for word in words:
        assert word in run.result["msg"]


def test_missing_runtime_names_the_host_role(run_module, tmp_path):
    run = run_module(unit, {"name": "web", "command": COMMAND, "runtime_path": str(tmp_path / "nope")})
    assert run.failed
    assert run.result["error"]["kind"] == "runtime-missing"
    assert "berth.fleet.host" in run.result["msg"]
    assert str(tmp_path / "nope") in run.result["msg"]
