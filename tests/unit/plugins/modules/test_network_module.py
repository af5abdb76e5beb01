"""berth.fleet.network and network_info against a fake runtime."""

from __future__ import annotations

import json

import pytest
from ansible_collections.berth.fleet.plugins.modules import network, network_info

APPLY = ["network", "apply", "-f", "-", "--json"]
NET = {
    "name": "shop",
    "bridge": "berth1",
    "subnet": "10.89.40.0/24",
    "gateway": "10.89.40.1",
    "masquerade": True,
}
DATA = dict(NET, state="present", containers=[], check_mode=False)
ABSENT = {"state": "absent"}
DIFF = {"before": ABSENT, "after": dict(NET, state="present")}
CREATE = [{"action": "create-network", "target": "shop", "detail": NET}]


def failure(kind, message, **details):
    error = {"kind": kind, "message": message, "details": details}
    return {"protocol": 1, "runtime": "0.1.0", "command": "network apply", "ok": False, "error": error}


# (id, module args, the document the runtime must get on stdin)
REQUEST_CASES = [
    ("name-only", {"name": "shop"}, {"name": "shop", "state": "present", "masquerade": True}),
    (
        "every-option",
        {
            "name": "shop",
            "subnet": "10.89.40.0/24",
            "gateway": "10.89.40.254",
            "bridge": "br-shop",
            "masquerade": False,
        },
        {
            "name": "shop",
            "state": "present",
            "subnet": "10.89.40.0/24",
            "gateway": "10.89.40.254",
            "bridge": "br-shop",
            "masquerade": False,
        },
    ),
    (
        "dual-stack",
        {"name": "shop", "subnet": "10.89.40.0/24", "subnet6": "fd00:40::/64", "gateway6": "fd00:40::fe"},
        {
            "name": "shop",
            "state": "present",
            "subnet": "10.89.40.0/24",
            "subnet6": "fd00:40::/64",
            "gateway6": "fd00:40::fe",
            "masquerade": True,
        },
    ),
    ("absent", {"name": "shop", "state": "absent"}, {"name": "shop", "state": "absent"}),
    (
        "absent-ignores-the-settings",
        {"name": "shop", "state": "absent", "subnet": "10.89.40.0/24"},
        {"name": "shop", "state": "absent"},
    ),
]


@pytest.mark.parametrize("args, doc", [c[1:] for c in REQUEST_CASES], ids=[c[0] for c in REQUEST_CASES])
def test_request(run_module, fake_runtime, args, doc):
    fake_runtime.answer(command="network apply", data=DATA)
    run = run_module(network, dict(args, runtime_path=str(fake_runtime.path)))
    assert not run.failed, run.result
    [call] = fake_runtime.calls()
    assert call["argv"] == APPLY
    assert json.loads(call["stdin"]) == doc


# (id, runtime's envelope fields, check_mode)
OUTCOME_CASES = [
    ("created", {"changed": True, "actions": CREATE, "diff": DIFF}, False),
    ("unchanged", {"changed": False, "diff": {"before": DIFF["after"], "after": DIFF["after"]}}, False),
    ("check", {"changed": True, "actions": CREATE, "diff": DIFF}, True),
]


@pytest.mark.parametrize(
    "fields, check_mode", [c[1:] for c in OUTCOME_CASES], ids=[c[0] for c in OUTCOME_CASES]
)
@pytest.mark.parametrize("diff", [True, False], ids=["diff", "no-diff"])
def test_result_mirrors_the_runtime(run_module, fake_runtime, fields, check_mode, diff):
    fake_runtime.answer(command="network apply", data=dict(DATA, check_mode=check_mode), **fields)
    run = run_module(
        network, {"name": "shop", "runtime_path": str(fake_runtime.path)}, check_mode=check_mode, diff=diff
    )
    assert not run.failed, run.result
    assert run.result["changed"] is fields["changed"]
    assert run.result["actions"] == fields.get("actions", [])
    assert run.result.get("diff") == (fields["diff"] if diff else None)
    assert run.result["network"] == dict(NET, containers=[])
    assert ("--check" in fake_runtime.calls()[0]["argv"]) == check_mode


@pytest.mark.parametrize(
    "error, kind",
    [
        (
            failure(
                "conflict",
                "network shop is in use by container(s) web: remove them first",
                containers=["web"],
            ),
            "conflict",
        ),
        (failure("conflict", "subnet 10.89.0.0/16 overlaps network apps (10.89.40.0/24)"), "conflict"),
        (failure("invalid-input", "subnet '10.89.40.1/24' is not a valid CIDR network"), "invalid-input"),
    ],
    ids=["in-use", "overlap", "bad-subnet"],
)
def test_runtime_refusals_are_clear_failures_with_no_change(run_module, fake_runtime, error, kind):
    fake_runtime.reply(error, rc=4)
    run = run_module(network, {"name": "shop", "state": "absent", "runtime_path": str(fake_runtime.path)})
    assert run.failed and run.result["changed"] is False and run.result["actions"] == []
    assert run.result["error"] == {"kind": kind, "details": error["error"]["details"]}
    assert run.result["msg"] == error["error"]["message"]


def test_a_partial_change_is_reported_as_a_change(run_module, fake_runtime):
    removed = [{"action": "remove-network", "target": "shop"}]
    fake_runtime.reply(
        dict(failure("unsupported", "nft is not installed"), actions=removed, changed=True), rc=5
    )
    run = run_module(
        network, {"name": "shop", "subnet": "10.89.41.0/24", "runtime_path": str(fake_runtime.path)}
    )
    assert run.failed and run.result["changed"] is True and run.result["actions"] == removed


@pytest.mark.parametrize(
    "args, words",
    [
        ({"name": "shop", "state": "gone"}, ["value of state must be one of"]),
        ({"name": "shop", "masquerade": "perhaps"}, ["masquerade", "bool"]),
        ({"name": "shop", "internal": True}, ["Unsupported parameters", "internal"]),
        ({"subnet": "10.89.40.0/24"}, ["missing required arguments: name"]),
    ],
    ids=["state", "type", "unknown", "no-name"],
)
def test_refused(run_module, fake_runtime, args, words):
    fake_runtime.answer(data=DATA)
    run = run_module(network, dict(args, runtime_path=str(fake_runtime.path)))
    assert run.failed and fake_runtime.calls() == []
    for word in words:
        assert word in run.result["msg"]


ROWS = [dict(NET, created_at="2025-01-01T00:00:00Z", containers=["web"])]
INSPECTED = [dict(ROWS[0], attached=[], leases={}, ports=[])]


@pytest.mark.parametrize(
    "args, reply, argv, value",
    [
        ({}, {"data": ROWS}, ["network", "ls", "--json"], ROWS),
        ({"name": "shop"}, {"data": INSPECTED}, ["network", "inspect", "shop", "--json"], INSPECTED),
        ({"name": "nope"}, None, ["network", "inspect", "nope", "--json"], []),
    ],
    ids=["all", "one", "none"],
)
def test_info_reads_and_never_changes(run_module, fake_runtime, args, reply, argv, value):
    if reply is None:
        fake_runtime.reply(failure("not-found", "no network named 'nope'"), rc=3)
    else:
        fake_runtime.answer(**reply)
    run = run_module(network_info, dict(args, runtime_path=str(fake_runtime.path)), check_mode=True)
    assert not run.failed, run.result
    assert run.result["changed"] is False
    assert run.result["networks"] == value
    [call] = fake_runtime.calls()
    assert call["argv"] == argv


def test_info_other_errors_fail(run_module, fake_runtime):
    fake_runtime.reply(failure("invalid-input", "'host' is a network mode, not a network name"), rc=2)
    run = run_module(network_info, {"name": "host", "runtime_path": str(fake_runtime.path)})
    assert run.failed and run.result["error"]["kind"] == "invalid-input"
