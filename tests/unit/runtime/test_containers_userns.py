"""The `userns` field and range allocation: pure logic (the kernel side is tested on lab hosts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from berth.containers import userns
from berth.containers.spec import ContainerSpec, parse_spec
from berth.errors import Conflict, InvalidInput

BASE = {"name": "c", "rootfs": "/srv/root", "command": ["true"]}


def _rec(name: str, uid: int, gid: int, size: int = 65536) -> dict[str, Any]:
    return {"name": name, "userns": {"uid": uid, "gid": gid, "size": size, "auto": True}}


def test_the_default_is_host_and_leaves_the_spec_hash_alone() -> None:
    spec = parse_spec(BASE)
    assert spec.userns == userns.HOST and "userns" not in spec.to_json()
    assert parse_spec({**BASE, "userns": "host"}).spec_hash == spec.spec_hash


@pytest.mark.parametrize("value", ["auto", {"uid": 100000, "gid": 200000, "size": 65536}])
def test_userns_round_trips_through_the_record(value: Any) -> None:
    spec = parse_spec({**BASE, "userns": value})
    assert spec.to_json()["userns"] == value
    assert ContainerSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("bogus", "'bogus' is not 'host', 'auto'"),
        (7, "spec field userns: 7 is not of type"),
        ({"uid": 1, "gid": 1}, "userns.size: a whole number"),
        ({"uid": 1, "gid": 1, "size": 0}, "userns.size: 0 ids"),
        ({"uid": 1, "gid": 1, "size": True}, "userns.size: a whole number"),
        ({"uid": 0, "gid": 5, "size": 10}, "host's root"),
        ({"uid": 5, "gid": 5, "size": 10, "x": 1}, "unknown key 'x'"),
        ({"uid": 2**32 - 10, "gid": 5, "size": 100}, "past the last id"),
    ],
)
def test_bad_userns_values_are_named(value: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match="userns") as err:
        parse_spec({**BASE, "userns": value})
    assert message in err.value.message


def test_the_pool_comes_from_subuid_for_the_containers_user(tmp_path: Path) -> None:
    sub = tmp_path / "subuid"
    assert userns.pool(sub) == userns.DEFAULT_POOL  # no file
    sub.write_text("alice:100000:65536\ncontainers:300000:131072\ncontainers:200000:65536\nbad\n")
    assert userns.pool(sub) == ((200000, 65536), (300000, 131072))


def test_auto_takes_the_lowest_free_range_and_skips_held_ones(tmp_path: Path) -> None:
    sub = tmp_path / "subuid"
    sub.write_text("containers:100000:262144\n")
    want = userns.Userns("auto")
    first = userns.allocate(want, "a", [], sub, sub)
    assert first == {"uid": 100000, "gid": 100000, "size": 65536, "auto": True}
    held = [_rec("a", 100000, 100000), _rec("m", 170000, 170000, 10)]  # an explicit one in the pool
    second = userns.allocate(want, "b", held, sub, sub)
    assert second is not None and second["uid"] == 170010
    # Its own record is not in its way (a restart re-allocating must not move it).
    assert userns.allocate(want, "a", held, sub, sub) == {**first, "uid": 100000}


def test_a_full_pool_and_an_overlapping_range_are_conflicts(tmp_path: Path) -> None:
    sub = tmp_path / "subuid"
    sub.write_text("containers:100000:65536\n")
    with pytest.raises(Conflict, match="no free range of 65536 uids"):
        userns.allocate(userns.Userns("auto"), "b", [_rec("a", 100000, 100000)], sub, sub)
    with pytest.raises(Conflict, match="gids 100010-100019 overlap those of container a"):
        userns.allocate(userns.Userns("map", 500000, 100010, 10), "b", [_rec("a", 1, 100000)], sub, sub)


def _bind(**extra: Any) -> dict[str, Any]:
    return {"type": "bind", "source": "/srv/data", "target": "/data", **extra}


def test_an_idmap_bind_mount_round_trips_and_a_plain_one_keeps_its_hash() -> None:
    spec = parse_spec({"name": "c", "rootfs": "/r", "command": ["true"], "userns": "auto",
                       "mounts": [_bind(idmap=True)]})  # fmt: skip
    assert spec.mounts[0].idmap and ContainerSpec.from_json(spec.to_json()) == spec
    doc = {"name": "c", "rootfs": "/r", "command": ["true"], "mounts": [_bind()]}
    plain = parse_spec(doc)
    assert "idmap" not in plain.to_json()["mounts"][0]  # specs from before the option hash the same
    assert plain.spec_hash == parse_spec({**doc, "mounts": [_bind(idmap=False)]}).spec_hash


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"mounts": [_bind(idmap=True)]}, "idmap needs a user namespace"),
        ({"userns": "auto", "mounts": [{"type": "volume", "source": "v", "target": "/v", "idmap": True}]},
         "only bind mounts take it"),
        ({"userns": "auto", "mounts": [{"type": "tmpfs", "target": "/t", "idmap": True}]},
         "only bind mounts take it"),
        ({"mounts": [_bind(nocopy=True)]}, "only named volumes take it"),
    ],
)  # fmt: skip
def test_idmap_where_it_means_nothing_is_refused(doc: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_spec({"name": "c", "rootfs": "/r", "command": ["true"], **doc})


def test_configure_marks_volumes_and_idmap_binds_and_leaves_berths_own_mounts() -> None:
    """berth's own mounts (the notify socket's dir) follow the spec's in the shim's list."""
    spec = parse_spec({"name": "c", "rootfs": "/r", "command": ["true"], "userns": "auto",
                       "mounts": [_bind(idmap=True), {"type": "volume", "source": "v", "target": "/v"},
                                  {"type": "bind", "source": "/etc", "target": "/e"}]})  # fmt: skip
    config: dict[str, Any] = {"mounts": [{"target": m.target} for m in spec.mounts] + [{"target": "/run/n"}]}
    userns.configure(config, spec.mounts, {"uid": 100000, "gid": 100000, "size": 65536})
    assert [m.get("idmap", False) for m in config["mounts"]] == [True, False, True, False]
