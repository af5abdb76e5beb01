"""berth.fleet.volume against a fake runtime: the request on stdin, check and diff mode, refusals."""

from __future__ import annotations

import json

import pytest
from ansible_collections.berth.fleet.plugins.modules import volume

APPLY = ["volume", "apply", "-f", "-", "--json"]
VOLUME = {
    "name": "db",
    "path": "/var/lib/berth/volumes/db/data",
    "created_at": None,
    "users": [],
    "in_use": False,
}
DIFF = {"before": {"state": "absent"}, "after": {"state": "present"}}
CREATED = [{"action": "create-volume", "target": "db"}]


@pytest.mark.parametrize("check_mode", [False, True], ids=["apply", "check"])
def test_request_and_result(run_module, fake_runtime, check_mode):
    data = {"name": "db", "state": "present", "volume": VOLUME, "check_mode": check_mode}
    fake_runtime.answer(command="volume apply", changed=not check_mode, actions=CREATED, diff=DIFF, data=data)
    run = run_module(
        volume, {"name": "db", "runtime_path": str(fake_runtime.path)}, check_mode=check_mode, diff=True
    )
    assert not run.failed, run.result
    [call] = fake_runtime.calls()
    assert call["argv"] == APPLY + (["--check"] if check_mode else [])
    assert json.loads(call["stdin"]) == {"name": "db", "state": "present"}
    assert run.result["volume"] == VOLUME and run.result["actions"] == CREATED
    assert run.result["changed"] is (not check_mode) and run.result["diff"] == DIFF


def test_a_volume_in_use_fails_with_the_runtimes_words(run_module, fake_runtime):
    error = {"kind": "conflict", "message": "volume db is in use by container web: remove those first"}
    fake_runtime.answer(rc=4, ok=False, command="volume apply", error=error)
    run = run_module(volume, {"name": "db", "state": "absent", "runtime_path": str(fake_runtime.path)})
    assert run.failed and "in use by container web" in run.result["msg"]
    assert run.result["error"]["kind"] == "conflict"


def test_refused_before_the_runtime_runs(run_module, fake_runtime):
    fake_runtime.answer(data={})
    run = run_module(volume, {"name": "db", "state": "gone", "runtime_path": str(fake_runtime.path)})
    assert run.failed and "value of state must be one of" in run.result["msg"] and fake_runtime.calls() == []
