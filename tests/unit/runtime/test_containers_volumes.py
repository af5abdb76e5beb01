"""Named volumes: who uses one (containers, kept deployment revisions), and what rm and prune plan."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from berth.containers import records, volumes
from berth.containers.paths import ContainerPaths
from berth.deployments import records as deployments
from berth.errors import Conflict, InvalidInput, NotFound


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BERTH_DATA_DIR", str(tmp_path))
    return tmp_path


def _container(name: str, *volume_names: str) -> None:
    ContainerPaths.of(name).data.mkdir(parents=True)
    mounts = [{"type": "volume", "source": v, "target": f"/{v}"} for v in volume_names]
    records.put({"name": name, "spec": {"mounts": [*mounts, {"type": "tmpfs", "target": "/t"}]}})


def _deployment(name: str, revisions: dict[str, list[str]]) -> None:
    record = deployments.new_record(name)
    record["revisions"] = {
        number: {"content": {"roles": [{"role": "web", "container": {
            "mounts": [{"type": "volume", "source": v, "target": "/d"} for v in vols]}}]}}
        for number, vols in revisions.items()
    }  # fmt: skip
    deployments.put(record)


def test_users_are_containers_and_kept_revisions(data: Path) -> None:
    _container("a", "shared", "mine")
    _container("b", "shared")
    _deployment("shop", {"1": ["old"], "2": ["shared"]})
    assert volumes.users() == {
        "shared": ["container a", "container b", "deployment shop revision 2"],
        "mine": ["container a"],
        "old": ["deployment shop revision 1"],
    }


def test_create_is_whole_and_exact(data: Path) -> None:
    assert volumes.ensure("v") is True and volumes.ensure("v") is False
    assert (data / "volumes" / "v" / "data").is_dir() and volumes.names() == ["v"]
    [v] = volumes.observe()
    assert v.created_at and v.users == []
    assert volumes.plan_create("v", volumes.observe()) == []
    assert [a.kind for a in volumes.plan_create("w", volumes.observe())] == ["create-volume"]
    with pytest.raises(InvalidInput, match="not a volume name"):
        volumes.plan_create("../etc", [])


def test_rm_refuses_what_is_used_or_missing_and_prune_keeps_it(data: Path) -> None:
    for name in ("used", "kept", "free"):
        volumes.ensure(name)
    _container("c", "used")
    _deployment("shop", {"3": ["kept"]})
    (data / "volumes" / ".new-x-abc").mkdir()  # what a killed create leaves
    (data / "volumes" / ".gone-y-12" / "data").mkdir(parents=True)  # and a killed remove
    observed = volumes.observe()
    with pytest.raises(Conflict, match="in use by container c"):
        volumes.plan_remove(["used"], observed)
    with pytest.raises(Conflict, match="deployment shop revision 3"):
        volumes.plan_remove(["free", "kept"], observed)
    with pytest.raises(NotFound):
        volumes.plan_remove(["nope"], observed)
    pruned = volumes.plan_prune(observed)
    assert [(a.kind, a.target) for a in pruned] == [
        ("remove-volume", "free"),
        ("remove-debris", ".gone-y-12"),
        ("remove-debris", ".new-x-abc"),
    ]
    assert [a.target for a in volumes.apply(pruned)] == ["free", ".gone-y-12", ".new-x-abc"]
    assert volumes.names() == ["kept", "used"]
    assert sorted(p.name for p in (data / "volumes").iterdir()) == ["kept", "used"]


def test_copy_up_takes_the_merged_view_once(data: Path, tmp_path: Path) -> None:
    """The image's files at the mount point, whiteouts of upper layers applied; only a fresh,
    empty volume is filled, and only once."""
    bottom, top = tmp_path / "l0", tmp_path / "l1"
    (bottom / "srv").mkdir(parents=True)
    (bottom / "srv" / "kept").write_text("kept\n")
    (bottom / "srv" / "gone").write_text("gone\n")
    (top / "srv").mkdir(parents=True)
    os.mknod(top / "srv" / "gone", stat.S_IFCHR | 0o600, os.makedev(0, 0))  # an overlay whiteout
    (top / "srv" / "new").write_text("new\n")
    layers = [str(top), str(bottom)]  # top first, as a container's layers are
    assert volumes.ensure("v")
    assert volumes.copy_up("v", layers, "/srv") is True
    assert sorted(p.name for p in volumes.path_of("v").iterdir()) == ["kept", "new"]
    (volumes.path_of("v") / "kept").unlink()
    assert volumes.copy_up("v", layers, "/srv") is False  # not fresh any more
    assert sorted(p.name for p in volumes.path_of("v").iterdir()) == ["new"]
    assert volumes.ensure("w") and volumes.copy_up("w", layers, "/nowhere") is False
    assert list(volumes.path_of("w").iterdir()) == []
