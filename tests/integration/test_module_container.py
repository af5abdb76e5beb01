"""berth.fleet.container, container_info, slice, slice_info and image through ansible-playbook on lab hosts.

Every case runs the module over SSH on a real systemd host and checks its verdict against what
the host's runtime and systemd say: create, one field changed at a time (each detected, with the
right diff), no-op, check mode (runtime records and unit list unchanged), removal, bad input.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from rootfs import ROOTFS, build_rootfs
from test_module_unit import Play

if TYPE_CHECKING:
    from labkit import Lab

pytestmark = pytest.mark.lab

SLEEP = ["/bin/sleep", "600"]
STATE = "/var/lib/berth"
SECRET_TEXT = "s3cr3t-file-content-7f1c"
PASSWORD = "Registry-Pa55word-9e2d"


class Host(Play):
    """A Play whose snapshot covers containers, slices and images: what check mode must not touch."""

    def snapshot(self) -> tuple[str, str]:  # type: ignore[override]
        records = self.lab.run(
            self.host,
            [
                "sh",
                "-c",
                f"cd {STATE} 2>/dev/null || exit 0; "
                "find containers slices images -path '*/upper' -prune -o -path '*/tmp' -prune -o "
                "-type f ! -name .lock -print 2>/dev/null | LC_ALL=C sort | xargs -r sha256sum",
            ],
        ).stdout
        units = self.lab.run(
            self.host, ["systemctl", "list-units", "--all", "--plain", "--no-legend", "berth-*"]
        ).stdout
        return hashlib.sha256(records.encode()).hexdigest(), units


@pytest.fixture(scope="module")
def rootfs(lab: Lab) -> str:
    host = lab.hosts[1]
    build_rootfs(lab, host)
    lab.run(host, ["sh", "-c", f"umask 077; printf %s {SECRET_TEXT} > /root/db.pw"])
    return ROOTFS


@pytest.fixture
def play(lab: Lab, scratch_dir: Path, rootfs: str) -> Iterator[Host]:
    runner = Host(lab, scratch_dir, lab.hosts[1])
    yield runner
    for row in lab.berth(runner.host, "ps", "--all")["data"]:
        if row["name"].startswith("it-"):
            lab.berth(runner.host, "rm", "-f", row["name"], check=False)
    for row in sorted(lab.berth(runner.host, "slice", "ls")["data"], key=lambda r: -len(r["name"])):
        if row["name"].startswith("it"):
            lab.berth(runner.host, "slice", "rm", row["name"], check=False)


def spec_changes(diff: dict[str, Any]) -> set[str]:
    before = (diff["before"] or {}).get("spec") or {}
    after = (diff["after"] or {}).get("spec") or {}
    out = {k for k in before.keys() | after.keys() if k != "resources" and before.get(k) != after.get(k)}
    rb, ra = before.get("resources") or {}, after.get("resources") or {}
    return out | {f"resources.{k}" for k in rb.keys() | ra.keys() if rb.get(k) != ra.get(k)}


def test_create_then_nothing_to_do(play: Host, lab: Lab) -> None:
    args = {"name": "it-create", "rootfs": ROOTFS, "command": SLEEP, "resources": {"memory_max": "64M"}}
    created = play(args, module="container")
    assert created["changed"] is True, created
    assert [a["action"] for a in created["actions"]] == ["create", "start"]
    assert created["container"]["status"] == "running" and created["container"]["pid"]
    assert created["diff"]["before"]["spec"] is None
    assert play.active("berth-it-create.service") == "active"

    again = play(args, module="container")
    assert again["changed"] is False and again["actions"] == [], again
    assert again["spec_hash"] == created["spec_hash"]
    assert again["container"]["pid"] == created["container"]["pid"]
    # The same limit written another way is the same spec.
    assert play(dict(args, resources={"memory_max": "67108864"}), module="container")["changed"] is False
    # The limit holds in the container's cgroup.
    cg = "/sys/fs/cgroup/memory/berth.slice/berth-it-create.service/memory.limit_in_bytes"
    assert lab.run(play.host, ["cat", cg]).stdout.strip() == str(64 * 2**20)


DISK = "/var/lib/berth"  # a path on the lab host's disk, for per-device IO limits

# One field at a time, each from the spec the previous step left: (option, value, diff keys).
FIELD_STEPS: list[tuple[str, Any, set[str]]] = [
    ("command", ["/bin/sleep", "700"], {"command"}),
    ("entrypoint", ["/bin/busybox"], {"entrypoint"}),
    ("env", {"MODE": "test"}, {"env"}),
    ("workdir", "/tmp", {"workdir"}),
    ("user", "nobody", {"user"}),
    ("hostname", "box", {"hostname"}),
    ("mounts", [{"type": "tmpfs", "target": "/scratch", "size": "8M"}], {"mounts"}),
    ("secrets", [{"name": "db", "source": "/root/db.pw"}], {"secrets"}),
    ("read_only", True, {"read_only"}),
    ("restart", "on-failure:3", {"restart"}),
    ("stop_signal", "SIGINT", {"stop_signal"}),
    ("stop_timeout", 2, {"stop_timeout"}),
    ("cap_drop", ["KILL"], {"capabilities"}),
    ("cap_add", ["SYS_TIME"], {"capabilities"}),
    ("no_new_privileges", True, {"no_new_privileges"}),
    ("labels", {"tier": "test"}, {"labels"}),
    ("slice", "itshop", {"slice"}),
    ("network", "host", {"network"}),
    ("resources", {"memory_max": "32M"}, {"resources.memory_max"}),
    ("resources", {"memory_max": "32M", "cpu_quota": "20%"}, {"resources.cpu_quota"}),
    ("resources", {"memory_max": "32M", "cpu_quota": "20%", "tasks_max": "16"}, {"resources.tasks_max"}),
    (
        "resources",
        {"memory_max": "32M", "cpu_quota": "20%", "tasks_max": "16", "io_read_bandwidth_max": {DISK: "1M"}},
        {"resources.io_read_bandwidth_max"},
    ),
]


def test_each_field_change_is_detected_and_shown(play: Host) -> None:
    play({"name": "itshop"}, module="slice")
    # sleep as PID 1 ignores SIGTERM: a short stop timeout keeps each replacement quick
    args: dict[str, Any] = {"name": "it-fields", "rootfs": ROOTFS, "command": SLEEP, "stop_timeout": 1}
    calls = [(args, "container", False)]
    for option, value, _ in FIELD_STEPS:
        args = dict(args, **{option: value})
        calls.append((args, "container", False))
    calls.append((args, "container", False))  # the last spec again
    created, *steps, final = play.batch(calls)
    assert created["changed"] is True, created
    for (option, _, keys), result in zip(FIELD_STEPS, steps, strict=True):
        assert result["changed"] is True, (option, result)
        assert spec_changes(result["diff"]) == keys, (option, result["diff"])
        assert result["container"]["status"] == "running", (option, result)
    assert final["changed"] is False, final


def test_states_and_check_mode(play: Host) -> None:
    args = {"name": "it-check", "rootfs": ROOTFS, "command": SLEEP, "stop_timeout": 1}
    before = play.snapshot()
    states = ("started", "created", "stopped", "restarted")
    planned = play.batch([(dict(args, state=state), "container", True) for state in states])
    for state, result in zip(states, planned, strict=True):
        assert result["changed"] is True and result["actions"], (state, result)
    assert play.snapshot() == before  # none of the planning runs touched the host
    assert play(dict(args, state="absent"), module="container", check=True)["changed"] is False

    created = play(dict(args, state="created"), module="container")
    assert created["container"]["status"] == "created" and created["changed"]
    started = play(args, module="container")
    assert [a["action"] for a in started["actions"]] == ["start"]
    pid = play.main_pid("berth-it-check.service")
    before = play.snapshot()
    changes = (
        dict(args, env={"A": "1"}),
        dict(args, state="stopped"),
        dict(args, state="restarted"),
        dict(args, state="absent"),
        dict(args, resources={"cpu_weight": 50}),
    )
    *planned, same = play.batch([(c, "container", True) for c in changes] + [(args, "container", True)])
    for changed_args, result in zip(changes, planned, strict=True):
        assert result["changed"] is True, (changed_args, result)
    assert same["changed"] is False, same
    assert play.snapshot() == before
    assert play.main_pid("berth-it-check.service") == pid
    restarted = play(dict(args, state="restarted"), module="container")
    assert restarted["changed"] is True and play.main_pid("berth-it-check.service") != pid
    stopped, again = play.batch([(dict(args, state="stopped"), "container", False)] * 2)
    assert stopped["changed"] is True and play.active("berth-it-check.service") != "active"
    assert again["changed"] is False, again
    gone = {"name": "it-check", "state": "absent"}
    removed, again, info = play.batch(
        [
            (gone, "container", False),
            (gone, "container", False),
            ({"name": "it-check"}, "container_info", False),
        ]
    )
    assert removed["changed"] is True and removed["spec_hash"] is None
    assert again["changed"] is False
    assert info["containers"] == []


# (id, extra module args, error kind, words the message must hold)
BAD_OPTIONS = [
    ("runtime-refuses-restart", {"restart": "sometimes"}, "invalid-input", ["restart", "sometimes"]),
    ("relative-workdir", {"workdir": "srv"}, "invalid-input", ["workdir"]),
    (
        "missing-bind-source",
        {"mounts": [{"type": "bind", "source": "/nope", "target": "/x"}]},
        "not-found",
        ["/nope"],
    ),
    ("bool-env", {"env": {"DEBUG": True}}, "invalid-option", ["env.DEBUG"]),
    (
        "unquoted-mode",
        {"mounts": [{"type": "tmpfs", "target": "/t", "mode": 493}]},
        "invalid-option",
        ["mode"],
    ),
]


@pytest.mark.parametrize("extra, kind, words", [pytest.param(*c[1:], id=c[0]) for c in BAD_OPTIONS])
def test_bad_option_fails_clearly_and_changes_nothing(play: Host, extra, kind, words) -> None:
    args = {"name": "it-bad", "rootfs": ROOTFS, "command": SLEEP}
    play(args, module="container")
    before = play.snapshot()
    result = play(dict(args, **extra), module="container")
    assert result["failed"] is True and result["changed"] is False, result
    assert result["error"]["kind"] == kind, result
    for word in words:
        assert word in result["msg"], result["msg"]
    assert play.snapshot() == before


def playbook_output(play: Host, tasks: list[dict[str, Any]], *flags: str) -> subprocess.CompletedProcess[str]:
    """The playbook's whole output; `flags` such as --check and a verbosity (-vvvv unless given)."""
    path = play.workdir / f"raw-{play.runs}.yml"
    play.runs += 1
    path.write_text(json.dumps([{"hosts": play.host, "gather_facts": False, "tasks": tasks}]))
    verbosity = [] if any(f.startswith("-v") or f == "-q" for f in flags) else ["-vvvv"]
    return play.lab.ansible_playbook(
        path, "-i", play.lab.inventory, *verbosity, "--diff", *flags, check=False
    )


def test_argument_errors_are_clear(play: Host) -> None:
    # (module args, words of the error) - Ansible's own validation: wrong types, unknown options, conflicts
    cases = [
        ({"name": "it-x", "rootfs": ROOTFS, "command": SLEEP, "stop_timeout": "soon"}, "stop_timeout"),
        ({"name": "it-x", "rootfs": ROOTFS, "command": SLEEP, "publish": ["80:80"]}, "Unsupported param"),
        ({"name": "it-x", "rootfs": ROOTFS, "image": "web:1", "command": SLEEP}, "mutually exclusive"),
        ({"name": "it-x", "command": SLEEP}, "any of the following are missing: image, rootfs, layers"),
    ]
    before = play.snapshot()
    results = play.batch([(args, "container", False) for args, _ in cases])
    for (args, words), result in zip(cases, results, strict=True):
        assert result["failed"] is True and words in result["msg"], (args, result)
    assert play.snapshot() == before


def test_secrets_never_in_output(play: Host) -> None:
    """The secret file's content never passes through Ansible; a registry password is never shown."""
    tasks = [
        {
            "berth.fleet.container": {
                "name": "it-secret",
                "rootfs": ROOTFS,
                "command": ["/bin/sh", "-c", "cat /run/secrets/db; sleep 600"],
                "secrets": [{"name": "db", "source": "/root/db.pw"}],
            },
        },
        {
            "berth.fleet.image": {
                "name": "10.0.0.1:1/nothing:1",
                "registry": {"username": "u", "password": PASSWORD, "retries": 0, "insecure": True},
            },
            "ignore_errors": True,
        },
        {
            "berth.fleet.image": {
                "name": "web:1",
                "registry": {"username": "u", "password": PASSWORD},
                "force": "maybe",
            },
            "ignore_errors": True,
        },
        {
            "berth.fleet.image": {
                "name": "web:1",
                "state": "absent",
                "build": {"context": "/tmp"},
                "registry": {"username": "u", "password": PASSWORD},
            },
            "ignore_errors": True,
        },
    ]
    # Every verbosity (the default one prints failures differently), with and without check mode.
    for flags in ((), ("--check",), ("-v",), ("-vvvvvv", "--check")):
        proc = playbook_output(play, tasks, *flags)
        out = proc.stdout + proc.stderr
        assert "berth.fleet.image" in out and "conflicts with build" in out, out[-3000:]
        assert SECRET_TEXT not in out
        assert PASSWORD not in out
    logs = play.lab.run(play.host, ["journalctl", "--no-pager", "-o", "cat", "-n", "2000"]).stdout
    assert PASSWORD not in logs


def test_slice_module_and_info(play: Host, lab: Lab) -> None:
    before = play.snapshot()
    planned = play({"name": "itweb", "resources": {"cpu_weight": 300}}, module="slice", check=True)
    assert planned["changed"] is True and play.snapshot() == before
    created = play({"name": "itweb", "resources": {"cpu_weight": 300}}, module="slice")
    assert created["changed"] is True and created["slice"]["unit"] == "berth-itweb.slice"
    assert play({"name": "itweb", "resources": {"cpu_weight": 300}}, module="slice")["changed"] is False
    changed = play({"name": "itweb", "resources": {"cpu_weight": 300, "tasks_max": 64}}, module="slice")
    assert changed["changed"] is True and [a["action"] for a in changed["actions"]] == ["update"]
    assert changed["diff"]["after"]["resources"] == {"cpu_weight": 300, "tasks_max": 64}
    assert (
        lab.run(
            play.host, ["cat", "/sys/fs/cgroup/pids/berth.slice/berth-itweb.slice/pids.max"]
        ).stdout.strip()
        == "64"
    )
    io = {"cpu_weight": 300, "tasks_max": 64, "io_write_bandwidth_max": {DISK: "2M"}}
    assert play({"name": "itweb", "resources": io}, module="slice")["changed"] is True
    same = dict(io, io_write_bandwidth_max={DISK: 2 << 20})  # the same limit, written in bytes
    assert play({"name": "itweb", "resources": same}, module="slice")["changed"] is False
    throttles = "/sys/fs/cgroup/blkio/berth.slice/berth-itweb.slice/blkio.throttle.write_bps_device"
    assert lab.run(play.host, ["cat", throttles]).stdout.split()[1] == str(2 << 20)
    [row] = play({"name": "itweb"}, module="slice_info")["slices"]
    assert row["active_state"] == "active" and row["resources"]["tasks_max"] == 64
    bad = play({"name": "Bad Name"}, module="slice")
    assert bad["failed"] and bad["error"]["kind"] == "invalid-input"
    gone = play({"name": "itweb", "state": "absent"}, module="slice")
    assert gone["changed"] is True
    assert play({"name": "itweb", "state": "absent"}, module="slice")["changed"] is False
    assert play({"name": "itweb"}, module="slice_info")["slices"] == []


def test_volume_module_present_in_use_absent(play: Host, lab: Lab) -> None:
    """Check mode touches nothing, present is exact, absent is refused while a container uses it."""
    gone = "test ! -e /var/lib/berth/volumes/itdata"
    planned = play({"name": "itdata"}, module="volume", check=True)
    assert planned["changed"] is True and [a["action"] for a in planned["actions"]] == ["create-volume"]
    assert lab.run(play.host, ["sh", "-c", gone], check=False).returncode == 0
    made = play({"name": "itdata"}, module="volume")
    assert made["changed"] is True and made["volume"]["path"] == "/var/lib/berth/volumes/itdata/data"
    assert play({"name": "itdata"}, module="volume")["changed"] is False
    mounts = [{"type": "volume", "source": "itdata", "target": "/data"}]
    play({"name": "it-vol", "rootfs": ROOTFS, "command": SLEEP, "mounts": mounts}, module="container")
    busy = play({"name": "itdata", "state": "absent"}, module="volume")
    assert busy["failed"] and busy["error"]["kind"] == "conflict" and "container it-vol" in busy["msg"]
    assert play({"name": "itdata"}, module="volume")["volume"]["users"] == ["container it-vol"]
    [row] = play({"name": "itdata"}, module="volume_info")["volumes"]
    assert row["in_use"] is True and row["users"] == ["container it-vol"]
    play({"name": "it-vol", "state": "absent"}, module="container")
    removed = play({"name": "itdata", "state": "absent"}, module="volume")
    assert removed["changed"] is True and removed["volume"] is None
    assert lab.run(play.host, ["sh", "-c", gone], check=False).returncode == 0
    assert play({"name": "itdata", "state": "absent"}, module="volume")["changed"] is False


def test_image_module_import_tag_remove(play: Host, lab: Lab) -> None:
    lab.run(play.host, ["sh", "-c", f"tar -C {ROOTFS} -cf /root/base.tar ."])
    args = {
        "name": "itbase:1",
        "archive": {"path": "/root/base.tar", "changes": ['CMD ["sh"]']},
        "tags": ["itbase:latest"],
    }
    before = play.snapshot()
    planned = play(args, module="image", check=True)
    assert planned["changed"] is True and planned["image"] is None, planned
    assert {"record-image", "tag"} <= {a["action"] for a in planned["actions"]}
    assert play.snapshot() == before
    imported = play(args, module="image")
    assert imported["changed"] is True and imported["digest"] == planned["digest"]
    assert sorted(imported["image"]["tags"]) == ["localhost/itbase:1", "localhost/itbase:latest"]
    assert play(args, module="image")["changed"] is False
    assert play(args, module="image", check=True)["changed"] is False
    [info] = play({"name": "itbase:1"}, module="image_info")["images"]
    assert info["digest"] == imported["digest"]
    # A container from the image, through the module.
    ran = play({"name": "it-img", "image": "itbase:1", "command": SLEEP}, module="container")
    assert (
        ran["container"]["status"] == "running" and ran["container"]["image"]["digest"] == imported["digest"]
    )
    busy = play({"name": "itbase:1", "state": "absent"}, module="image")
    assert busy["changed"] is True and [a["action"] for a in busy["actions"]] == ["untag"]
    in_use = play({"name": "itbase:latest", "state": "absent"}, module="image")
    assert in_use["failed"] and in_use["error"]["kind"] == "conflict", in_use
    play({"name": "it-img", "state": "absent"}, module="container")
    removed = play({"name": "itbase:latest", "state": "absent"}, module="image")
    assert removed["changed"] is True and "remove-image" in [a["action"] for a in removed["actions"]]
    assert play({"name": "itbase:latest", "state": "absent"}, module="image")["changed"] is False
    missing = play({"name": "itnothing:1", "source": "local"}, module="image")
    assert missing["failed"] and missing["error"]["kind"] == "not-found"
