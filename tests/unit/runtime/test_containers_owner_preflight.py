"""Owned containers (a build's RUN steps) and the preflight: the parts that need no systemd.

An owner is judged gone only when it certainly is (another start time, another boot); from
another PID namespace or with a malformed record nothing is judged, so nothing is reaped. The
preflight finds what a create or start would trip over before any action is applied.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from berth.containers import owner, preflight
from berth.containers.spec import ContainerSpec, parse_spec
from berth.errors import NotFound
from berth.host import process_start
from berth.state.atomic import atomic_write_json


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BERTH_DATA_DIR", str(tmp_path))
    return tmp_path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_this_process_is_alive_as_an_owner() -> None:
    me = owner.current()
    assert me["pid"] == os.getpid() and me["start"] == process_start(os.getpid())
    assert owner.status(me) == owner.ALIVE


def test_an_exited_owner_or_a_reused_pid_is_gone() -> None:
    me = owner.current()
    assert owner.status({**me, "pid": _dead_pid()}) == owner.GONE
    # the same PID with another start time: a later process that reused the owner's PID
    assert owner.status({**me, "start": str(int(me["start"]) + 1)}) == owner.GONE


def test_an_owner_of_an_earlier_boot_is_gone() -> None:
    assert owner.status({**owner.current(), "boot": "another-boot:1"}) == owner.GONE


@pytest.mark.parametrize(
    "change",
    [{"pidns": "pid:[1]"}, {"pid": "12"}, {"start": None}],
    ids=["other-pid-namespace", "pid-not-an-int", "no-start-time"],
)
def test_an_owner_that_cannot_be_judged_from_here_is_unknown(change: dict[str, object]) -> None:
    assert owner.status({**owner.current(), **change}) == owner.UNKNOWN
    assert owner.status(None) == owner.UNKNOWN


def test_orphans_are_owned_records_whose_owner_is_gone(data_dir: Path) -> None:
    me = owner.current()
    for name, record_owner in [
        ("build-dead", {**me, "pid": _dead_pid()}),
        ("build-live", me),
        ("build-elsewhere", {**me, "pid": _dead_pid(), "pidns": "pid:[1]"}),
        ("web", None),  # not owned: never an orphan, whatever its name
    ]:
        record: dict[str, object] = {"name": name, "status": "running"}
        if record_owner is not None:
            record["owner"] = record_owner
        atomic_write_json(data_dir / "containers" / name / "record.json", record)
    assert owner.orphans() == ["build-dead"]


def test_debris_is_a_step_containers_dir_without_a_record(data_dir: Path) -> None:
    root = data_dir / "containers"
    (root / "build-aaaa" / "upper").mkdir(parents=True)
    (root / "web" / "upper").mkdir(parents=True)  # not a step container: left to its owner
    atomic_write_json(root / "build-bbbb" / "record.json", {"name": "build-bbbb"})
    (root / "build-file").write_text("")
    assert owner.debris() == ["build-aaaa"]
    assert owner.debris() == ["build-aaaa"]  # reading removes nothing


def _spec(tmp_path: Path, **extra: object) -> ContainerSpec:
    layer = tmp_path / "layer"
    layer.mkdir(exist_ok=True)
    return parse_spec({"name": "pf", "layers": [str(layer)], "command": ["true"], **extra})


def test_a_good_spec_has_no_problems(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "token").write_text("x")
    spec = _spec(
        tmp_path,
        mounts=[{"type": "bind", "source": str(tmp_path / "src"), "target": "/x"}],
        secrets=[{"name": "token", "source": str(tmp_path / "token")}],
    )
    assert preflight.problems(spec) == []


def test_every_problem_is_found_and_the_first_is_raised(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "pf",
            "layers": [str(tmp_path / "no-layer")],
            "command": ["true"],
            "mounts": [{"type": "bind", "source": str(tmp_path / "nope"), "target": "/x"}],
        }
    )
    found = preflight.problems(spec)
    assert [type(e) for e in found] == [NotFound, NotFound]
    assert str(tmp_path / "nope") in found[0].message and "no-layer" in found[1].message
    with pytest.raises(NotFound, match="bind mount source"):
        preflight.check(spec)
    # a start of an existing container needs no layers looked up: its record has them
    assert [e.message for e in preflight.problems(spec, create=False)] == [found[0].message]


def test_a_missing_secret_is_a_problem(tmp_path: Path) -> None:
    spec = _spec(tmp_path, secrets=[{"name": "token", "source": str(tmp_path / "none")}])
    assert "secret token" in preflight.problems(spec)[0].message
    with pytest.raises(NotFound, match="secret token"):
        preflight.check_sources(spec)
