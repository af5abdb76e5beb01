"""Archives from the controller: the plugin's reading of an archive agrees with the runtime's, and
`berth image apply` with `import.digest` adopts a stored image without its archive, exactly."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from ansible_collections.berth.fleet.plugins.plugin_utils.archive_image import ArchiveError, archive_image

from berth.errors import InvalidInput, NotFound
from berth.images.apply import apply, archive_images, validate
from berth.images.docker_archive import export_docker_archive
from berth.images.oci_layout import export_layout
from berth.images.rootfs import import_rootfs
from berth.images.store import ImageStore


def _tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def exported(tmp_path: Path) -> dict[str, object]:
    """One image in a store, and its OCI layout and docker-archive exports."""
    store = ImageStore(tmp_path / "source-store")
    rootfs = _tar(tmp_path / "rootfs.tar", {"hello": b"hi", "etc/passwd": b"root:x:0:0::/:/bin/sh\n"})
    out = import_rootfs(store, rootfs, ["app:1"], [], False, None, 0)
    record = store.image(out.digests[0])
    assert record is not None
    export_layout(store, record, tmp_path / "app-oci.tar", "app:1")
    export_docker_archive(store, record, tmp_path / "app-docker.tar", ["app:1"])
    return {"record": record, "oci": tmp_path / "app-oci.tar", "docker": tmp_path / "app-docker.tar"}


def test_controller_and_host_name_the_same_image(exported) -> None:
    record = exported["record"]
    fmt, image = archive_image(str(exported["oci"]))
    assert (fmt, image) == ("oci", record.digest)
    assert archive_images(exported["oci"], "oci") == [image]
    fmt, image = archive_image(str(exported["docker"]))
    assert (fmt, image) == ("docker-archive", record.config)  # a docker-archive's image is its ID
    assert archive_images(exported["docker"], "docker-archive") == [image]


REFUSED = [
    ("rootfs", {"bin/sh": b"x"}, "neither an OCI layout nor a docker-archive"),
    ("two-images", {"manifest.json": json.dumps([{"Config": "a"}, {"Config": "b"}]).encode()}, "2 images"),
    (
        "multi-platform",
        {
            "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
            "index.json": json.dumps(
                {
                    "manifests": [
                        {
                            "mediaType": "application/vnd.oci.image.index.v1+json",
                            "digest": "sha256:" + "a" * 64,
                            "size": 1,
                        }
                    ]
                }
            ).encode(),
        },
        "single-platform",
    ),
    ("not-json", {"manifest.json": b"{nope"}, "not JSON"),
]


@pytest.mark.parametrize("files, words", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_archives_whose_image_is_unknown_are_refused(tmp_path: Path, files, words) -> None:
    with pytest.raises(ArchiveError) as caught:
        archive_image(str(_tar(tmp_path / "a.tar", files)))
    assert words in str(caught.value)


def test_not_a_tar_and_rootfs_format_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 64)
    with pytest.raises(ArchiveError, match="not a readable tar"):
        archive_image(str(junk))
    with pytest.raises(ArchiveError, match="rootfs"):
        archive_image(str(junk), "rootfs")


def kinds(actions):
    return [a.kind for a in actions]


@pytest.mark.parametrize("kind", ["oci", "docker"])
def test_import_digest_adopts_a_stored_image_without_its_archive(tmp_path: Path, exported, kind) -> None:
    store = ImageStore(tmp_path / "host-store")
    archive = exported[kind]
    image = archive_image(str(archive))[1]
    gone = str(tmp_path / "not-copied.tar")
    without = validate({"name": "app:2", "import": {"digest": image}})

    planned = apply(without, check=True, store=store)  # the host lacks it: the plugin must copy
    assert kinds(planned.planned) == ["import"] and planned.planned[0].detail == {"image": image}
    assert planned.digest is None and store.images() == []
    with pytest.raises(NotFound, match="no image"):
        apply(validate({"name": "app:2", "import": {"digest": image, "path": gone}}), store=store)
    assert store.images() == []

    copied = validate({"name": "app:2", "import": {"digest": image, "path": str(archive)}})
    done = apply(copied, store=store)
    assert "record-image" in kinds(done.applied)
    digest = done.digest
    assert apply(without, store=store).applied == []  # no archive, nothing to do
    again = apply(without, check=True, store=store)
    assert again.planned == [] and again.digest == digest

    renamed = validate({"name": "app:3", "import": {"digest": image}})
    assert kinds(apply(renamed, check=True, store=store).planned) == ["tag"]
    assert kinds(apply(renamed, store=store).applied) == ["tag"]
    assert store.find("app:3").digest == digest
    assert apply(renamed, store=store).applied == []


def test_an_archive_must_hold_the_image_it_is_said_to(tmp_path: Path, exported) -> None:
    store = ImageStore(tmp_path / "host-store")
    other = "sha256:" + "b" * 64
    doc = validate({"name": "app:1", "import": {"digest": other, "path": str(exported["oci"])}})
    with pytest.raises(InvalidInput, match="does not hold image"):
        apply(doc, store=store)
    assert store.images() == [] and store.tags() == {}


BAD = [
    ({"name": "a:1", "import": {"digest": "sha256:short"}}, "import.digest"),
    ({"name": "a:1", "source": "import", "import": {"format": "oci"}}, "import.path"),
    ({"name": "a:1", "build": {"context": "/", "target": ""}}, "build.target"),
]


@pytest.mark.parametrize("doc, words", BAD)
def test_bad_digest_and_target_are_refused(doc, words) -> None:
    with pytest.raises(InvalidInput, match=words):
        validate(doc)


def test_build_target_is_part_of_the_planned_build(tmp_path: Path) -> None:
    doc = validate({"name": "web:1", "build": {"context": str(tmp_path), "target": "test"}})
    out = apply(doc, check=True, store=ImageStore(tmp_path / "s"))
    assert kinds(out.planned) == ["build"] and out.planned[0].detail["target"] == "test"
