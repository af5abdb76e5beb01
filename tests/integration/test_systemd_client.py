"""`berth unit` and the systemd D-Bus client against real systemd (lab hosts), and the bus errors.

The lab tests run `berth` inside a lab host (`lab.run`/`lab.berth`); each unit they create has a
name of its own and is removed by a finalizer, whatever the test's outcome. The two tests at the
top need no lab: they check the errors for a missing bus and for a bus without systemd on this
machine, where no system bus runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import BERTH, Lab

from berth.systemd.names import unit_object_path
from tests.private_bus import private_bus

BACKENDS = ["native", "dbus-fast", "dbus-next"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
RECORDS = "/var/lib/berth/units"


def machine_berth(*args: str, env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [BERTH, *args, "--json"], capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )
    return proc.returncode, json.loads(proc.stdout)


# -- no lab needed ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_system_bus_is_systemd_unavailable(backend: str, tmp_path: Path) -> None:
    sock = tmp_path / "no-bus-here"
    rc, out = machine_berth(
        "unit", "ls", env={"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={sock}", "BERTH_DBUS_BACKEND": backend}
    )
    assert rc == 7, out
    assert out["error"]["kind"] == "systemd-unavailable"
    assert out["error"]["message"].startswith(f"no system bus at {sock}")


@pytest.fixture
def bus_without_systemd(tmp_path: Path) -> Iterator[str]:
    """A private dbus-daemon on which nobody owns org.freedesktop.systemd1."""
    with private_bus(tmp_path, "system") as address:
        yield address


@pytest.mark.parametrize("backend", BACKENDS)
def test_bus_without_systemd_is_systemd_unavailable(backend: str, bus_without_systemd: str) -> None:
    rc, out = machine_berth(
        "unit", "ls", env={"DBUS_SYSTEM_BUS_ADDRESS": bus_without_systemd, "BERTH_DBUS_BACKEND": backend}
    )
    assert rc == 7, out
    assert out["error"]["kind"] == "systemd-unavailable"
    assert out["error"]["message"].startswith("systemd is not running")
    assert out["error"]["details"]["dbus_error"] == "org.freedesktop.DBus.Error.ServiceUnknown"


# -- on lab hosts ----------------------------------------------------------------------------


@pytest.fixture
def host(lab: Lab) -> str:
    return lab.hosts[0]


@pytest.fixture
def new_unit(lab: Lab, host: str) -> Iterator[Callable[[], str]]:
    """Names for test units; every unit so named is removed afterwards, whatever happened."""
    names: list[str] = []

    def make() -> str:
        names.append(f"berth-it-{uuid.uuid4().hex[:10]}")
        return names[-1]

    yield make
    for name in names:
        lab.berth(host, "unit", "rm", name, check=False)
        lab.run(host, ["systemctl", "stop", f"{name}.service"], check=False)
        lab.run(host, ["systemctl", "reset-failed", f"{name}.service"], check=False)
        lab.run(host, ["rm", "-f", f"{RECORDS}/{name}.service.json"], check=False)


def apply(lab: Lab, host: str, spec: dict[str, Any], *extra: str, **kw: Any) -> dict[str, Any]:
    return lab.berth(host, "unit", "apply", "-f", "-", *extra, input=json.dumps(spec), **kw)


def sleeper(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "command": ["/bin/sleep", "infinity"], **fields}


def busctl(lab: Lab, host: str, *args: str) -> Any:
    """busctl's JSON answer: an independent D-Bus client to check berth's reads against."""
    return json.loads(lab.run(host, ["busctl", "--json=short", *args]).stdout)["data"]


def bus_property(lab: Lab, host: str, unit: str, interface: str, prop: str) -> Any:
    manager = ("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")
    path = busctl(lab, host, "call", *manager, "GetUnit", "s", unit)[0]
    assert path == unit_object_path(unit)  # berth computes the same path without asking
    return busctl(
        lab,
        host,
        "get-property",
        "org.freedesktop.systemd1",
        path,
        f"org.freedesktop.systemd1.{interface}",
        prop,
    )


def cgroup_file(lab: Lab, host: str, controller: str, cgroup: str, v1: str, v2: str) -> str:
    unified = lab.run(host, ["test", "-e", "/sys/fs/cgroup/cgroup.controllers"], check=False).returncode == 0
    if unified:
        path = f"/sys/fs/cgroup{cgroup}/{v2}"
    else:
        candidates = [f"/sys/fs/cgroup/{d}{cgroup}/{v1}" for d in (controller, f"{controller},cpuacct")]
        path = next(p for p in candidates if lab.run(host, ["test", "-e", p], check=False).returncode == 0)
    return lab.run(host, ["cat", path]).stdout.strip()


def units_like(lab: Lab, host: str, pattern: str) -> list[Any]:
    manager = ("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")
    return sorted(busctl(lab, host, "call", *manager, "ListUnitsByPatterns", "asas", "0", "1", pattern)[0])


def record_files(lab: Lab, host: str) -> str:
    """Names, sizes, mtimes and hashes of everything in the records dir (dotfiles too)."""
    script = (
        f"cd {RECORDS} 2>/dev/null || exit 0; ls -la --time-style=full-iso; sha256sum -- * .[!.]* 2>/dev/null"
    )
    return lab.run(host, ["sh", "-c", script], check=False).stdout


@pytest.mark.lab
def test_limits_reach_dbus_and_the_cgroup(lab: Lab, host: str, new_unit: Callable[[], str]) -> None:
    name = new_unit()
    unit = f"{name}.service"
    resources = {"memory_max": "64M", "cpu_quota": "20%", "tasks_max": 50}
    out = apply(lab, host, sleeper(name, resources=resources))
    assert out["changed"] is True
    assert [a["action"] for a in out["actions"]] == ["start", "record"]
    state = out["data"]["state"]
    assert (state["active_state"], state["sub_state"]) == ("active", "running")
    assert state["main_pid"] > 0

    props = lab.berth(host, "unit", "inspect", name)["data"]["properties"]
    assert props["MemoryMax"] == 64 * 1024**2
    assert props["CPUQuotaPerSecUSec"] == 200_000
    assert props["TasksMax"] == 50
    assert bus_property(lab, host, unit, "Service", "MemoryMax") == 64 * 1024**2
    assert bus_property(lab, host, unit, "Service", "CPUQuotaPerSecUSec") == 200_000
    assert bus_property(lab, host, unit, "Service", "TasksMax") == 50
    assert bus_property(lab, host, unit, "Service", "Environment") == [
        f"BERTH_SPEC_HASH={out['data']['spec_hash']}"
    ]

    cg = state["control_group"]
    assert cg.endswith(f"/{unit}")
    assert cgroup_file(lab, host, "memory", cg, "memory.limit_in_bytes", "memory.max") == str(64 * 1024**2)
    quota = cgroup_file(lab, host, "cpu", cg, "cpu.cfs_quota_us", "cpu.max")
    assert quota.split()[0] == "20000"
    assert cgroup_file(lab, host, "pids", cg, "pids.max", "pids.max") == "50"


@pytest.mark.lab
def test_second_apply_changes_nothing(lab: Lab, host: str, new_unit: Callable[[], str]) -> None:
    spec = sleeper(new_unit(), resources={"memory_max": "32M"}, environment={"GREETING": "hi"})
    first = apply(lab, host, spec)
    second = apply(lab, host, spec)
    assert first["changed"] is True
    assert second["changed"] is False
    assert second["actions"] == []
    assert second["data"]["spec_hash"] == first["data"]["spec_hash"]
    assert second["data"]["state"]["main_pid"] == first["data"]["state"]["main_pid"]
    assert second["diff"]["before"] == second["diff"]["after"]
    # the same spec, said differently, is the same spec
    spec["resources"] = {"memory_max": 32 * 1024**2}
    assert apply(lab, host, spec)["changed"] is False


@pytest.mark.lab
def test_a_changed_field_restarts_the_unit(lab: Lab, host: str, new_unit: Callable[[], str]) -> None:
    name = new_unit()
    first = apply(lab, host, sleeper(name, resources={"memory_max": "32M"}))
    second = apply(lab, host, sleeper(name, resources={"memory_max": "48M"}))
    assert second["changed"] is True
    assert [(a["action"], a.get("detail", {}).get("reason")) for a in second["actions"]] == [
        ("stop", "spec changed"),
        ("start", "spec changed"),
        ("record", None),
    ]
    assert second["data"]["spec_hash"] != first["data"]["spec_hash"]
    state = second["data"]["state"]
    assert state["active_state"] == "active"
    assert state["main_pid"] != first["data"]["state"]["main_pid"]
    assert second["diff"]["before"]["spec"]["resources"]["memory_max"] == 32 * 1024**2
    assert second["diff"]["after"]["spec"]["resources"]["memory_max"] == 48 * 1024**2
    limit = cgroup_file(lab, host, "memory", state["control_group"], "memory.limit_in_bytes", "memory.max")
    assert limit == str(48 * 1024**2)


@pytest.mark.lab
@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_exec_is_job_failed_with_the_journal(
    lab: Lab, host: str, new_unit: Callable[[], str], backend: str
) -> None:
    name = new_unit()
    spec = {"name": name, "command": ["/nonexistent", "--flag"]}
    out = apply(lab, host, spec, check=False, env={"BERTH_DBUS_BACKEND": backend})
    assert out["exit_code"] == 8, out
    error = out["error"]
    assert error["kind"] == "job-failed"
    details = error["details"]
    assert details["job_result"] == "failed"
    assert (details["active_state"], details["result"]) == ("failed", "exit-code")
    assert details["exec_main_status"] == 203  # systemd's EXIT_EXEC
    assert any("/nonexistent" in line for line in details["journal"]), details["journal"]
    assert "/nonexistent" in error["message"]
    assert not out.get("actions"), "nothing was applied before the start failed"

    # the failed unit keeps its name taken until reset-failed, which the next apply plans first
    again = apply(lab, host, spec, check=False)
    assert again["error"]["kind"] == "job-failed"
    assert [a["action"] for a in again["actions"]] == ["reset-failed"]

    # a unit that failed to start was never recorded, but berth knows it by its marker
    rm = lab.berth(host, "unit", "rm", name)
    assert [a["action"] for a in rm["actions"]] == ["reset-failed"]
    assert lab.berth(host, "unit", "inspect", name, check=False)["error"]["kind"] == "not-found"


@pytest.mark.lab
@pytest.mark.parametrize("command", [["inspect"], ["stop"], ["rm"]])
def test_unknown_unit_is_not_found(lab: Lab, host: str, command: list[str]) -> None:
    out = lab.berth(host, "unit", *command, f"berth-it-missing-{uuid.uuid4().hex[:8]}", check=False)
    assert out["exit_code"] == 3, out
    assert out["error"]["kind"] == "not-found"


@pytest.mark.lab
def test_units_berth_does_not_manage_are_refused(lab: Lab, host: str) -> None:
    out = lab.berth(host, "unit", "stop", "dbus", check=False)  # loaded, running, not berth's
    assert out["error"]["kind"] == "not-found"
    assert "not managed by berth" in out["error"]["message"]
    assert lab.run(host, ["systemctl", "is-active", "dbus.service"]).stdout.strip() == "active"


@pytest.mark.lab
def test_unprivileged_user_gets_permission_denied(lab: Lab, host: str, new_unit: Callable[[], str]) -> None:
    apply(lab, host, sleeper(new_unit()))  # a record (mode 0600) exists

    proc = lab.run(host, [*NOBODY, "berth", "unit", "ls", "--json"], check=False)
    out = json.loads(proc.stdout)
    assert proc.returncode == 6, out
    assert out["error"]["kind"] == "permission-denied"

    # with a data dir it may write, nobody gets as far as systemd, which refuses it
    data = f"/tmp/berth-nobody-{uuid.uuid4().hex[:8]}"
    lab.run(host, ["install", "-d", "-m", "1777", data])
    try:
        spec = json.dumps(sleeper(new_unit()))
        proc = lab.run(
            host,
            ["env", f"BERTH_DATA_DIR={data}", *NOBODY, "berth", "unit", "apply", "-f", "-", "--json"],
            input=spec,
            check=False,
        )
        out = json.loads(proc.stdout)
        assert proc.returncode == 6, out
        assert out["error"]["kind"] == "permission-denied"
        assert out["error"]["details"]["dbus_error"] in {
            "org.freedesktop.DBus.Error.AccessDenied",
            "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
        }
    finally:
        lab.run(host, ["rm", "-rf", data], check=False)


@pytest.mark.lab
@pytest.mark.parametrize("backend", BACKENDS)
def test_lifecycle_on_each_backend(lab: Lab, host: str, new_unit: Callable[[], str], backend: str) -> None:
    env = {"BERTH_DBUS_BACKEND": backend}
    name = new_unit()
    unit = f"{name}.service"
    started = apply(lab, host, sleeper(name, slice="berth-it.slice"), env=env)
    assert started["data"]["state"]["control_group"] == f"/berth.slice/berth-it.slice/{unit}"  # "-" nests

    listed = lab.berth(host, "unit", "ls", env=env)["data"]["units"]
    mine = next(u for u in listed if u["unit"] == unit)
    assert mine["desired_state"] == "started"
    assert mine["state"]["active_state"] == "active"
    assert mine["spec_hash"] == started["data"]["spec_hash"]

    stopped = lab.berth(host, "unit", "stop", name, env=env)
    assert [a["action"] for a in stopped["actions"]] == ["stop", "record"]
    assert stopped["data"]["state"] is None  # a stopped transient unit is gone from systemd
    assert lab.berth(host, "unit", "stop", name, env=env)["changed"] is False
    inspected = lab.berth(host, "unit", "inspect", name, env=env)["data"]
    assert (inspected["desired_state"], inspected["state"]) == ("stopped", None)

    restarted = apply(lab, host, sleeper(name, slice="berth-it.slice"), env=env)
    assert [a["action"] for a in restarted["actions"]] == ["start", "record"]

    removed = lab.berth(host, "unit", "rm", name, env=env)
    assert [a["action"] for a in removed["actions"]] == ["stop", "forget"]
    assert unit not in [u["unit"] for u in lab.berth(host, "unit", "ls", env=env)["data"]["units"]]
    assert lab.run(host, ["test", "-e", f"{RECORDS}/{unit}.json"], check=False).returncode == 1


@pytest.mark.lab
def test_check_mode_changes_nothing(lab: Lab, host: str, new_unit: Callable[[], str]) -> None:
    name = new_unit()
    pattern = "berth-it-*"

    def snapshot() -> tuple[list[Any], str]:
        return units_like(lab, host, pattern), record_files(lab, host)

    # a unit that does not exist yet
    before = snapshot()
    out = apply(lab, host, sleeper(name), "--check")
    assert out["changed"] is True
    assert out["data"]["check_mode"] is True
    assert [a["action"] for a in out["actions"]] == ["start", "record"]
    assert out["diff"] == {
        "before": {"state": None, "spec": None},
        "after": {"state": "started", "spec": out["diff"]["after"]["spec"]},
    }
    assert out["data"]["state"] is None
    assert snapshot() == before

    # a running unit whose spec would change, and one that would stop
    apply(lab, host, sleeper(name))
    before = snapshot()
    changed = apply(lab, host, sleeper(name, resources={"tasks_max": 10}), "--check")
    assert [a["action"] for a in changed["actions"]] == ["stop", "start", "record"]
    stop = apply(lab, host, {"name": name, "state": "stopped"}, "--check")
    assert [a["action"] for a in stop["actions"]] == ["stop", "record"]
    same = apply(lab, host, sleeper(name), "--check")
    assert same["changed"] is False and same["actions"] == []
    assert snapshot() == before
