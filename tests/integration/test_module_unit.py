"""berth.fleet.unit through ansible-playbook on real systemd hosts of `berth lab`.

Every play runs the module on one lab host over SSH, saves the registered result on the
controller, and the test compares it with what the host's systemd and the runtime's records say.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from labkit import Lab

pytestmark = pytest.mark.lab

SLEEP = ["/usr/bin/sleep", "infinity"]
RECORDS = "/var/lib/berth/units"


class Play:
    """Runs berth.fleet modules on one lab host with ansible-playbook and returns their results."""

    def __init__(self, lab: Lab, workdir: Path, host: str) -> None:
        self.lab, self.workdir, self.host = lab, workdir, host
        self.runs = 0

    def __call__(
        self, args: dict[str, Any], module: str = "unit", check: bool = False, diff: bool = True
    ) -> dict[str, Any]:
        return self.batch([(args, module, check)], diff=diff)[0]

    def batch(self, calls: list[tuple[dict[str, Any], str, bool]], diff: bool = True) -> list[dict[str, Any]]:
        """Run (args, module, check) calls as the tasks of one play, in order; return their results.

        One ansible-playbook and one SSH connection for all: each task still runs the module
        afresh on the host, exactly as a play of many tasks does.
        """
        self.runs += 1
        out = self.workdir / f"result-{self.runs}.json"
        playbook = self.workdir / f"play-{self.runs}.yml"
        tasks: list[dict[str, Any]] = [
            {
                "name": f"berth.fleet.{module} #{i}",
                f"berth.fleet.{module}": args,
                "register": f"result_{i}",
                "ignore_errors": True,
                "check_mode": check,
            }
            for i, (args, module, check) in enumerate(calls)
        ]
        tasks.append(
            {
                "name": "Save the results on the controller",
                "ansible.builtin.copy": {
                    "content": "{{ ["
                    + ", ".join(f"result_{i}" for i in range(len(calls)))
                    + "] | to_json }}",
                    "dest": str(out),
                },
                "delegate_to": "localhost",
                "check_mode": False,
                "diff": False,
            }
        )
        # JSON is YAML: the play is written exactly as the test means it.
        playbook.write_text(json.dumps([{"hosts": self.host, "gather_facts": False, "tasks": tasks}]))
        flags = ["-i", self.lab.inventory] + (["--diff"] if diff else [])
        self.lab.ansible_playbook(playbook, *flags)
        results: list[dict[str, Any]] = json.loads(out.read_text())
        return results

    def snapshot(self) -> tuple[Any, str, str]:
        """What check mode must not change: the runtime's list, its records, systemd's units."""
        listed = self.lab.berth(self.host, "unit", "ls")["data"]["units"]
        records = self.lab.run(
            self.host,
            ["sh", "-c", f"ls -A {RECORDS} 2>&1; sha256sum {RECORDS}/*.json 2>&1; true"],
        ).stdout
        units = self.lab.run(
            self.host, ["systemctl", "list-units", "--all", "--plain", "--no-legend", "berth-it-*"]
        ).stdout
        return listed, records, units

    def active(self, unit: str) -> str:
        return self.lab.run(self.host, ["systemctl", "is-active", unit], check=False).stdout.strip()

    def main_pid(self, unit: str) -> str:
        return self.lab.run(self.host, ["systemctl", "show", "-P", "MainPID", unit]).stdout.strip()


@pytest.fixture
def play(lab: Lab, scratch_dir: Path) -> Iterator[Play]:
    """A Play on the lab's first host; the units the test made are removed afterwards."""
    runner = Play(lab, scratch_dir, lab.hosts[0])
    yield runner
    for unit in lab.berth(runner.host, "unit", "ls")["data"]["units"]:
        if unit["unit"].startswith("berth-it-"):
            lab.berth(runner.host, "unit", "rm", unit["unit"], check=False)


def spec_changes(diff: dict[str, Any]) -> set[str]:
    """The spec fields (resources.* one by one) that differ between the diff's two sides."""
    before = (diff["before"] or {}).get("spec") or {}
    after = (diff["after"] or {}).get("spec") or {}
    changed = {k for k in before.keys() | after.keys() if k != "resources" and before.get(k) != after.get(k)}
    limits_before, limits_after = before.get("resources") or {}, after.get("resources") or {}
    changed |= {
        f"resources.{k}"
        for k in limits_before.keys() | limits_after.keys()
        if limits_before.get(k) != limits_after.get(k)
    }
    return changed


def test_create_then_nothing_to_do(play: Play) -> None:
    args = {"name": "berth-it-create", "command": SLEEP, "resources": {"memory_max": "64M"}}
    created = play(args)
    assert created["changed"] is True, created
    assert created["unit"] == "berth-it-create.service"
    assert created["status"]["active_state"] == "active"
    assert created["status"]["main_pid"] > 0
    assert created["actions"], created
    assert created["diff"]["before"]["spec"] is None
    assert play.active("berth-it-create.service") == "active"

    again = play(args)
    assert again["changed"] is False, again
    assert again["actions"] == []
    assert again["spec_hash"] == created["spec_hash"]
    assert again["status"]["main_pid"] == created["status"]["main_pid"]

    # The same limit written another way is the same spec.
    same = play(dict(args, resources={"memory_max": "67108864"}))
    assert same["changed"] is False, same


# One field at a time, each from the spec the previous step left: (field, new value, diff key).
FIELD_STEPS = [
    ("command", ["/usr/bin/sleep", "1000000"], "command"),
    ("description", "berth integration test", "description"),
    ("environment", {"MODE": "test"}, "environment"),
    ("working_directory", "/tmp", "working_directory"),
    ("user", "nobody", "user"),
    ("resources", {"memory_max": "32M"}, "resources.memory_max"),
    ("resources", {"memory_max": "32M", "cpu_quota": "20%"}, "resources.cpu_quota"),
    ("resources", {"memory_max": "32M", "cpu_quota": "20%", "tasks_max": "16"}, "resources.tasks_max"),
    ("properties", {"LimitNOFILE": 4096}, "properties"),
]


def test_each_field_change_is_detected_and_shown(play: Play) -> None:
    args: dict[str, Any] = {"name": "berth-it-fields", "command": SLEEP}
    calls = [(args, "unit", False)]
    for field, value, _ in FIELD_STEPS:
        args = dict(args, **{field: value})
        calls.append((args, "unit", False))
    calls.append((args, "unit", False))  # the last spec again
    created, *steps, final = play.batch(calls)
    assert created["changed"] is True, created
    for (field, _, key), result in zip(FIELD_STEPS, steps, strict=True):
        assert result["changed"] is True, (field, result)
        assert spec_changes(result["diff"]) == {key}, (field, result["diff"])
        assert result["status"]["active_state"] == "active", (field, result)
    assert final["changed"] is False, final


def test_check_mode_changes_nothing(lab: Lab, scratch_dir: Path) -> None:
    # The last host: no other test uses it, so this also covers a host that never ran a unit.
    play = Play(lab, scratch_dir, lab.hosts[-1])
    args = {"name": "berth-it-check", "command": SLEEP}
    try:
        before = play.snapshot()
        planned = play(args, check=True)
        assert planned["changed"] is True, planned
        assert planned["actions"], planned
        assert planned["diff"]["after"]["state"] == "started"
        assert play.snapshot() == before
        assert play.active("berth-it-check.service") != "active"

        created = play(args)
        pid = play.main_pid("berth-it-check.service")
        before = play.snapshot()
        changed_spec = dict(args, description="changed in check mode only")
        changes = (changed_spec, dict(args, state="stopped"), dict(args, state="absent"))
        *planned_all, same = play.batch([(c, "unit", True) for c in changes] + [(args, "unit", True)])
        for state_args, result in zip(changes, planned_all, strict=True):
            assert result["changed"] is True, (state_args, result)
        assert same["changed"] is False, same
        assert play.snapshot() == before
        assert play.main_pid("berth-it-check.service") == pid
        assert play(args)["spec_hash"] == created["spec_hash"]
    finally:
        lab.berth(play.host, "unit", "rm", "berth-it-check", check=False)


def test_stopped_keeps_the_record_then_starts_again(play: Play, lab: Lab) -> None:
    args = {"name": "berth-it-stop", "command": SLEEP}
    play(args)
    stopped = play(dict(args, state="stopped"))
    assert stopped["changed"] is True, stopped
    assert play.active("berth-it-stop.service") != "active"
    assert lab.berth(play.host, "unit", "inspect", "berth-it-stop")["data"]["desired_state"] == "stopped"
    assert play(dict(args, state="stopped"))["changed"] is False

    started = play(args)
    assert started["changed"] is True, started
    assert started["status"]["active_state"] == "active"


def test_absent_removes_unit_and_record(play: Play, lab: Lab) -> None:
    args = {"name": "berth-it-absent", "command": SLEEP}
    play(args)
    removed = play({"name": "berth-it-absent", "state": "absent"})
    assert removed["changed"] is True, removed
    assert removed["spec_hash"] is None
    assert play.active("berth-it-absent.service") != "active"
    listed = [u["unit"] for u in lab.berth(play.host, "unit", "ls")["data"]["units"]]
    assert "berth-it-absent.service" not in listed
    assert play({"name": "berth-it-absent", "state": "absent"})["changed"] is False


# (id, module args, error kind, words the message must hold)
BAD_OPTIONS = [
    ("runtime-refuses-quota", {"resources": {"cpu_quota": "fast"}}, "invalid-input", ["cpu_quota", "fast"]),
    ("relative-workdir", {"working_directory": "srv"}, "invalid-input", ["working_directory"]),
    ("module-refuses-bool-env", {"environment": {"DEBUG": True}}, "invalid-option", ["environment.DEBUG"]),
]


@pytest.mark.parametrize("extra, kind, words", [c[1:] for c in BAD_OPTIONS], ids=[c[0] for c in BAD_OPTIONS])
def test_bad_option_fails_clearly_and_changes_nothing(play: Play, extra, kind, words) -> None:
    args = {"name": "berth-it-bad", "command": SLEEP}
    play(args)
    before = play.snapshot()
    result = play(dict(args, **extra))
    assert result["failed"] is True, result
    assert result["changed"] is False
    assert result["error"]["kind"] == kind
    for word in words:
        assert word in result["msg"], result["msg"]
    assert play.snapshot() == before


def test_missing_runtime_names_the_host_role(play: Play) -> None:
    before = play.snapshot()
    result = play({"name": "berth-it-missing", "command": SLEEP, "runtime_path": "/nonexistent"})
    assert result["failed"] is True, result
    assert result["error"]["kind"] == "runtime-missing"
    assert "berth.fleet.host" in result["msg"]
    assert "/nonexistent" in result["msg"]
    assert play.snapshot() == before


def test_info_modules_see_the_host(play: Play) -> None:
    runtime = play({}, module="runtime_info")
    assert runtime["installed"] is True and runtime["compatible"] is True, runtime
    assert runtime["protocol"] == 1

    play({"name": "berth-it-info", "command": SLEEP})
    listed = play({}, module="unit_info")
    assert "berth-it-info.service" in [u["unit"] for u in listed["units"]]
    [one] = play({"name": "berth-it-info"}, module="unit_info")["units"]
    assert one["state"]["active_state"] == "active"
    assert one["spec"]["command"] == SLEEP
    assert play({"name": "berth-it-nothing"}, module="unit_info")["units"] == []
