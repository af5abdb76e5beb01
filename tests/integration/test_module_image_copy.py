"""berth.fleet.image with an archive on the controller, over SSH to a lab host.

The action plugin copies the archive only to a host whose store lacks its image. What a user
checks: the first run copies and imports, the next copies nothing and changes nothing, another
archive of the same image only names it, check mode copies and writes nothing, and the remote
temporary directory is gone afterwards. Whether a copy happened is read from ansible's own `-vvv`
log (its `PUT` lines), not only from the module's `transferred`.
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_module_container import Host

from berth.images.docker_archive import export_docker_archive
from berth.images.oci_layout import export_layout
from berth.images.rootfs import import_rootfs
from berth.images.store import ImageStore

if TYPE_CHECKING:
    from labkit import Lab

pytestmark = pytest.mark.lab

PUT = re.compile(r"PUT (\S+) TO (\S+image-archive\.tar)")


class Recorded:
    """The lab, with every ansible-playbook run at -vvv and its output kept (for the PUT lines)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.outputs: list[str] = []

    def ansible_playbook(self, playbook: str | Path, *flags: str, **kwargs: Any) -> Any:
        proc = self.lab.ansible_playbook(playbook, *flags, "-vvv", **kwargs)
        self.outputs.append(proc.stdout)
        return proc

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lab, name)


def copies(output: str) -> list[str]:
    """The archives ansible copied to the host, as their controller paths."""
    return [m.group(1) for m in PUT.finditer(output)]


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One small image, exported on the controller as an OCI layout tar and a docker-archive."""
    work = tmp_path_factory.mktemp("image-copy")
    rootfs = work / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tf:
        for name, data in {"etc/passwd": b"root:x:0:0::/:/bin/sh\n", "srv/version": b"copy-1\n"}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1
            tf.addfile(info, io.BytesIO(data))
    store = ImageStore(work / "store")
    record = store.image(import_rootfs(store, rootfs, ["itcopy:1"], [], False, None, 0).digests[0])
    assert record is not None
    export_layout(store, record, work / "itcopy-oci.tar", "itcopy:1")
    export_docker_archive(store, record, work / "itcopy-docker.tar", ["itcopy:1"])
    return {
        "digest": record.digest,
        "id": record.config,
        "oci": str(work / "itcopy-oci.tar"),
        "docker": str(work / "itcopy-docker.tar"),
        "rootfs": str(rootfs),
    }


@pytest.fixture
def host(lab: Lab, scratch_dir: Path) -> Any:
    # The last host: the other module tests keep to the first two.
    recorded = Recorded(lab)
    runner = Host(recorded, scratch_dir, lab.hosts[-1])  # type: ignore[arg-type]
    yield runner, recorded
    for name in ("itcopy:1", "itcopy:docker"):
        lab.berth(runner.host, "image", "rm", "--force", name, check=False)


def test_archive_is_copied_only_to_a_host_without_its_image(
    host: Any, lab: Lab, archives: dict[str, Any]
) -> None:
    play, recorded = host
    oci = {"name": "itcopy:1", "archive": {"path": archives["oci"], "location": "controller"}}
    docker = {"name": "itcopy:docker", "archive": {"path": archives["docker"], "location": "controller"}}

    before = play.snapshot()
    # Check mode, and archives the controller cannot name: nothing copied, nothing written.
    rootfs, missing, digest_given, planned = play.batch(
        [
            (
                {"name": "itcopy:1", "archive": {"path": archives["rootfs"], "location": "controller"}},
                "image",
                False,
            ),
            (
                {"name": "itcopy:1", "archive": {"path": "/nonexistent/a.tar", "location": "controller"}},
                "image",
                False,
            ),
            (
                {"name": "itcopy:1", "archive": dict(oci["archive"], digest=archives["digest"])},
                "image",
                False,
            ),
            (oci, "image", True),
        ]
    )
    assert rootfs["failed"] and "neither an OCI layout nor a docker-archive" in rootfs["msg"], rootfs
    assert missing["failed"] and "/nonexistent/a.tar" in missing["msg"], missing
    assert digest_given["failed"] and "leave it unset" in digest_given["msg"], digest_given
    assert planned["changed"] is True and planned["transferred"] is False, planned
    assert [a["action"] for a in planned["actions"]] == ["import"], planned
    assert planned["archive_image"] == archives["digest"]
    assert planned["diff"]["before"] == {"state": "absent", "image": None}, planned["diff"]
    assert copies(recorded.outputs[-1]) == []
    assert play.snapshot() == before

    first, again, checked, renamed, renamed_again = play.batch(
        [
            (oci, "image", False),  # copies and imports
            (oci, "image", False),  # has it: nothing
            (oci, "image", True),
            (docker, "image", False),  # the same image in another format: named, not copied
            (docker, "image", False),
        ]
    )
    # One play: its PUT lines, in task order, are the copies of all five tasks.
    assert copies(recorded.outputs[-1]) == [archives["oci"]]
    assert first["changed"] is True and first["transferred"] is True, first
    assert first["digest"] == archives["digest"] and "record-image" in [a["action"] for a in first["actions"]]
    assert first["diff"]["after"]["image"]["digest"] == archives["digest"], first["diff"]
    assert again["changed"] is False and again["transferred"] is False and again["actions"] == [], again
    assert again["digest"] == archives["digest"]
    assert checked["changed"] is False and checked["transferred"] is False, checked
    # The docker-archive holds the same image (same ID): the host only gives it the new name.
    assert renamed["changed"] is True and renamed["transferred"] is False, renamed
    assert renamed["archive_image"] == archives["id"]
    assert [a["action"] for a in renamed["actions"]] == ["tag"] and renamed["digest"] == archives["digest"]
    assert renamed_again["changed"] is False and renamed_again["transferred"] is False, renamed_again

    stored = lab.berth(play.host, "image", "inspect", "itcopy:docker")["data"]
    assert stored["digest"] == archives["digest"]
    assert sorted(stored["tags"]) == ["localhost/itcopy:1", "localhost/itcopy:docker"]
    find = "find /root/.ansible/tmp /tmp -name image-archive.tar 2>/dev/null; true"
    leftovers = lab.run(play.host, ["sh", "-c", find]).stdout
    assert leftovers.strip() == "", leftovers  # the copy went with its temporary directory
