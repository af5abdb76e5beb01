"""berth.fleet.deployment against a fake runtime."""

from __future__ import annotations

import json

import pytest
from ansible_collections.berth.fleet.plugins.modules import deployment

CONTAINERS = [{"role": "web", "image": "shop:2", "ports": ["8080:80"]}]
STATUS = {
    "name": "shop",
    "current": 5,
    "previous": 4,
    "digests": {"web": "sha256:aa"},
    "serving": True,
    "health": {"web": "healthy"},
    "timings": {"gate": 1.5, "total": 2.0},
}

ARGV_CASES = [
    (
        "deploy",
        {"name": "shop", "containers": CONTAINERS, "keep": 3, "rollout": "r1"},
        ["deploy", "shop", "-f", "-", "--rollout", "r1", "--json"],
        {"name": "shop", "containers": CONTAINERS, "keep": 3},
    ),
    (
        "rollback-to",
        {"name": "shop", "state": "rolled_back", "revision": 4},
        ["rollback", "shop", "--to", "4", "--json"],
        None,
    ),
    (
        "rollback-undo",
        {"name": "shop", "state": "rolled_back", "undo_rollout": "r1", "rollout": "r2"},
        ["rollback", "shop", "--rollout", "r2", "--undo", "r1", "--json"],
        None,
    ),
    ("absent", {"name": "shop", "state": "absent"}, ["undeploy", "shop", "--json"], None),
]


@pytest.mark.parametrize("check_mode", [False, True], ids=["apply", "check"])
@pytest.mark.parametrize("args, argv, spec", [c[1:] for c in ARGV_CASES], ids=[c[0] for c in ARGV_CASES])
def test_call(run_module, fake_runtime, args, argv, spec, check_mode):
    fake_runtime.answer(command=argv[0], data=STATUS)
    run = run_module(deployment, dict(args, runtime_path=str(fake_runtime.path)), check_mode=check_mode)
    assert not run.failed, run.result
    [call] = fake_runtime.calls()
    assert call["argv"] == argv + (["--check"] if check_mode else [])
    assert (None if call["stdin"] is None else json.loads(call["stdin"])) == spec


def test_deployed_result(run_module, fake_runtime):
    diff = {"before": {"revision": 4}, "after": {"revision": 5}}
    actions = [{"action": "switch-traffic", "target": "shop"}]
    fake_runtime.answer(command="deploy", data=STATUS, changed=True, actions=actions, diff=diff)
    args = {"name": "shop", "containers": CONTAINERS, "runtime_path": str(fake_runtime.path)}
    run = run_module(deployment, args, diff=True)
    assert not run.failed, run.result
    assert run.result["changed"] is True
    assert run.result["actions"] == actions
    assert run.result["diff"] == diff
    assert run.result["revision"] == 5 and run.result["previous"] == 4
    assert run.result["digests"] == {"web": "sha256:aa"}
    assert run.result["serving"] is True
    assert run.result["health"] == {"web": "healthy"}
    assert run.result["timings"] == {"gate": 1.5, "total": 2.0}
    assert run.result["status"] == STATUS


def test_absent_result(run_module, fake_runtime):
    fake_runtime.answer(command="undeploy", data=None, changed=True)
    args = {"name": "shop", "state": "absent", "runtime_path": str(fake_runtime.path)}
    run = run_module(deployment, args)
    assert not run.failed, run.result
    assert run.result["changed"] is True
    assert run.result["revision"] is None and run.result["previous"] is None
    assert "diff" not in run.result and "status" not in run.result


@pytest.mark.parametrize(
    "args, words",
    [
        ({"name": "shop"}, ["state is deployed", "containers"]),
        (
            {"name": "shop", "state": "rolled_back", "revision": 1, "undo_rollout": "r1"},
            ["mutually exclusive", "revision|undo_rollout"],
        ),
    ],
    ids=["no-containers", "revision-and-undo"],
)
def test_refused(run_module, fake_runtime, args, words):
    fake_runtime.answer(data=STATUS)
    run = run_module(deployment, dict(args, runtime_path=str(fake_runtime.path)))
    assert run.failed and fake_runtime.calls() == []
    for word in words:
        assert word in run.result["msg"]
