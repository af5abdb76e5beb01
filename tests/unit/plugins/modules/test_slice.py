"""berth.fleet.slice against a fake runtime."""

from __future__ import annotations

import json

import pytest
from ansible_collections.berth.fleet.plugins.modules import slice as slice_module

APPLY = ["slice", "apply", "-f", "-", "--json"]
DATA = {
    "name": "shop",
    "unit": "berth-shop.slice",
    "resources": {"memory_max": 268435456},
    "spec_hash": "h1",
    "state": "present",
    "check_mode": False,
}
DIFF = {
    "before": {"state": "absent", "resources": None},
    "after": {"state": "present", "resources": {"memory_max": 268435456}},
}

REQUEST_CASES = [
    ("name-only", {"name": "shop"}, {"name": "shop", "state": "present"}),
    (
        "every-resource",
        {
            "name": "shop-api",
            "resources": {
                "memory_max": "256M",
                "memory_high": "200M",
                "memory_swap_max": "0",
                "cpu_quota": "150%",
                "cpu_weight": 300,
                "io_weight": 20,
                "tasks_max": 512,
                "cpus": "0-1",
                "mems": "0",
            },
        },
        {
            "name": "shop-api",
            "state": "present",
            "resources": {
                "memory_max": "256M",
                "memory_high": "200M",
                "memory_swap_max": "0",
                "cpu_quota": "150%",
                "cpu_weight": 300,
                "io_weight": 20,
                "tasks_max": "512",
                "cpus": "0-1",
                "mems": "0",
            },
        },
    ),
    ("empty-resources", {"name": "shop", "resources": {}}, {"name": "shop", "state": "present"}),
    ("absent", {"name": "shop", "state": "absent"}, {"name": "shop", "state": "absent"}),
]


@pytest.mark.parametrize("args, doc", [c[1:] for c in REQUEST_CASES], ids=[c[0] for c in REQUEST_CASES])
def test_request(run_module, fake_runtime, args, doc):
    fake_runtime.answer(command="slice apply", data=DATA)
    run = run_module(slice_module, dict(args, runtime_path=str(fake_runtime.path)))
    assert not run.failed, run.result
    [call] = fake_runtime.calls()
    assert call["argv"] == APPLY
    assert json.loads(call["stdin"]) == doc


OUTCOME_CASES = [
    (
        "created",
        {"changed": True, "actions": [{"action": "start", "target": "berth-shop.slice"}], "diff": DIFF},
        False,
    ),
    ("unchanged", {"changed": False, "diff": {"before": DIFF["after"], "after": DIFF["after"]}}, False),
    (
        "check",
        {"changed": True, "actions": [{"action": "start", "target": "berth-shop.slice"}], "diff": DIFF},
        True,
    ),
]


@pytest.mark.parametrize(
    "fields, check_mode", [c[1:] for c in OUTCOME_CASES], ids=[c[0] for c in OUTCOME_CASES]
)
def test_result(run_module, fake_runtime, fields, check_mode):
    fake_runtime.answer(command="slice apply", data=dict(DATA, check_mode=check_mode), **fields)
    run = run_module(
        slice_module,
        {"name": "shop", "runtime_path": str(fake_runtime.path)},
        check_mode=check_mode,
        diff=True,
    )
    assert not run.failed, run.result
    assert run.result["changed"] is fields["changed"]
    assert run.result["actions"] == fields.get("actions", [])
    assert run.result["diff"] == fields["diff"]
    assert run.result["spec_hash"] == "h1"
    assert run.result["slice"] == {
        "name": "shop",
        "unit": "berth-shop.slice",
        "resources": {"memory_max": 268435456},
    }
    assert ("--check" in fake_runtime.calls()[0]["argv"]) == check_mode


def test_warnings_are_passed_on(run_module, fake_runtime):
    fake_runtime.answer(command="slice apply", data=DATA, warnings=["cpus: not enforced on this host"])
    run = run_module(slice_module, {"name": "shop", "runtime_path": str(fake_runtime.path)})
    assert [w if isinstance(w, str) else w["event"]["msg"] for w in run.result["warnings"]] == [
        "cpus: not enforced on this host"
    ]


@pytest.mark.parametrize(
    "args, words",
    [
        ({"name": "shop", "state": "gone"}, ["value of state must be one of"]),
        ({"name": "shop", "resources": {"cpu_weight": "lots"}}, ["cpu_weight", "int"]),
        ({"name": "shop", "resources": {"bogus": 1}}, ["Unsupported parameters", "bogus"]),
        ({"resources": {}}, ["missing required arguments: name"]),
    ],
    ids=["state", "type", "unknown", "no-name"],
)
def test_refused(run_module, fake_runtime, args, words):
    fake_runtime.answer(data=DATA)
    run = run_module(slice_module, dict(args, runtime_path=str(fake_runtime.path)))
    assert run.failed and fake_runtime.calls() == []
    for word in words:
        assert word in run.result["msg"]
