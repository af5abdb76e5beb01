"""The read-only modules: container_info, image_info, slice_info against a fake runtime."""

from __future__ import annotations

import pytest
from ansible_collections.berth.fleet.plugins.modules import (
    container_info,
    image_info,
    slice_info,
    volume_info,
)

WEB = {"name": "web", "status": "running", "spec_hash": "h1"}
IMG = {"digest": "sha256:aa", "tags": ["localhost/web:1"]}
SLICES = [{"name": "shop", "unit": "berth-shop.slice"}, {"name": "shop-api", "unit": "berth-shop-api.slice"}]
NOT_FOUND = {"kind": "not-found", "message": "no such thing", "details": {}}

# (id, module, args, runtime reply fields (None: a not-found error), argv expected, result key, value)
VOLUMES = [
    {"name": "cache", "path": "/var/lib/berth/volumes/cache/data", "created_at": None, "users": [],
     "in_use": False},
    {"name": "db", "path": "/var/lib/berth/volumes/db/data", "created_at": "2026-12-08T00:00:00Z",
     "users": ["container db"], "in_use": True},
]  # fmt: skip
CASES = [
    ("containers-all", container_info, {}, {"data": [WEB]}, ["ps", "--all", "--json"], "containers", [WEB]),
    (
        "container-one",
        container_info,
        {"name": "web"},
        {"data": [WEB]},
        ["inspect", "web", "--json"],
        "containers",
        [WEB],
    ),
    (
        "container-none",
        container_info,
        {"name": "nope"},
        None,
        ["inspect", "nope", "--json"],
        "containers",
        [],
    ),
    ("images-all", image_info, {}, {"data": {"images": [IMG]}}, ["image", "ls", "--json"], "images", [IMG]),
    (
        "image-one",
        image_info,
        {"name": "web:1"},
        {"data": IMG},
        ["image", "inspect", "web:1", "--json"],
        "images",
        [IMG],
    ),
    ("image-none", image_info, {"name": "x:1"}, None, ["image", "inspect", "x:1", "--json"], "images", []),
    ("slices-all", slice_info, {}, {"data": SLICES}, ["slice", "ls", "--json"], "slices", SLICES),
    (
        "slice-by-name",
        slice_info,
        {"name": "shop"},
        {"data": SLICES},
        ["slice", "ls", "--json"],
        "slices",
        SLICES[:1],
    ),
    (
        "slice-by-unit",
        slice_info,
        {"name": "berth-shop-api.slice"},
        {"data": SLICES},
        ["slice", "ls", "--json"],
        "slices",
        SLICES[1:],
    ),
    ("slice-none", slice_info, {"name": "x"}, {"data": SLICES}, ["slice", "ls", "--json"], "slices", []),
    ("volumes-all", volume_info, {}, {"data": VOLUMES}, ["volume", "ls", "--json"], "volumes", VOLUMES),
    (
        "volume-by-name",
        volume_info,
        {"name": "db"},
        {"data": VOLUMES},
        ["volume", "ls", "--json"],
        "volumes",
        VOLUMES[1:],
    ),
    ("volume-none", volume_info, {"name": "x"}, {"data": VOLUMES}, ["volume", "ls", "--json"], "volumes", []),
]


@pytest.mark.parametrize(
    "module, args, reply, argv, key, value", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_info_reads_and_never_changes(run_module, fake_runtime, module, args, reply, argv, key, value):
    if reply is None:
        fake_runtime.reply(
            {"protocol": 1, "runtime": "0.1.0", "command": "x", "ok": False, "error": NOT_FOUND}, rc=3
        )
    else:
        fake_runtime.answer(**reply)
    run = run_module(module, dict(args, runtime_path=str(fake_runtime.path)), check_mode=True)
    assert not run.failed, run.result
    assert run.result["changed"] is False
    assert run.result[key] == value
    [call] = fake_runtime.calls()
    assert call["argv"] == argv


@pytest.mark.parametrize("module", [container_info, image_info, slice_info])
def test_other_errors_fail(run_module, fake_runtime, module):
    error = {"kind": "systemd-unavailable", "message": "no system bus", "details": {}}
    fake_runtime.reply({"protocol": 1, "runtime": "0.1.0", "command": "x", "ok": False, "error": error}, rc=5)
    run = run_module(module, {"name": "x", "runtime_path": str(fake_runtime.path)})
    assert run.failed and run.result["error"]["kind"] == "systemd-unavailable"
    assert run.result["msg"] == "no system bus"
