"""`berth image apply`: its validation (conflicts refused) and exact idempotency of import, tags, absent."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from berth.errors import Conflict, InvalidInput, NotFound
from berth.images.apply import apply, validate
from berth.images.store import ImageStore

REFUSED = [
    ("not-an-object", [], "JSON object"),
    ("no-name", {"state": "present"}, "name"),
    ("unknown-field", {"name": "a:1", "pasword": "x"}, "unknown field"),
    ("bad-state", {"name": "a:1", "state": "gone"}, "state"),
    (
        "absent-with-build",
        {"name": "a:1", "state": "absent", "build": {"context": "/"}},
        "conflicts with build",
    ),
    ("absent-with-push", {"name": "a:1", "state": "absent", "push": {}}, "conflicts with push"),
    ("build-and-import", {"name": "a:1", "build": {"context": "/"}, "import": {"path": "/a"}}, "exclusive"),
    ("source-vs-section", {"name": "a:1", "source": "pull", "build": {"context": "/"}}, "conflicts"),
    ("build-without-context", {"name": "a:1", "source": "build"}, "build.context"),
    ("password-alone", {"name": "a:1", "registry": {"password": "pw"}}, "username"),
    ("unknown-registry-field", {"name": "a:1", "registry": {"token": "pw"}}, "registry.token"),
    ("bad-reference", {"name": "Not A Ref"}, "reference"),
    ("zero-timeout", {"name": "a:1", "registry": {"timeout": 0}}, "registry.timeout must be"),
    ("text-timeout", {"name": "a:1", "registry": {"timeout": "soon"}}, "registry.timeout must be"),
    ("negative-min-rate", {"name": "a:1", "registry": {"min_rate": -1}}, "registry.min_rate must be"),
    ("fractional-min-rate", {"name": "a:1", "registry": {"min_rate": 0.5}}, "registry.min_rate must be"),
]


@pytest.mark.parametrize("doc, words", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_validation_refuses(doc, words):
    with pytest.raises(InvalidInput) as caught:
        validate(doc)
    assert words in caught.value.message
    assert "pw" not in caught.value.message


@pytest.fixture
def tarball(tmp_path: Path) -> Path:
    path = tmp_path / "rootfs.tar"
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo("hello")
        info.size, info.mtime = 2, 1
        tf.addfile(info, io.BytesIO(b"hi"))
    return path


def kinds(actions):
    return [a.kind for a in actions]


def test_import_tag_absent_are_exact(tmp_path: Path, tarball: Path) -> None:
    store = ImageStore(tmp_path / "store")
    doc = validate({"name": "base:1", "import": {"path": str(tarball)}, "tags": ["base:latest"]})
    planned = apply(doc, check=True, store=store)
    assert "record-image" in kinds(planned.planned) and planned.applied == []
    assert store.images() == []
    done = apply(doc, store=store)
    assert done.digest == planned.digest and kinds(done.applied) == kinds(planned.planned)
    again = apply(doc, store=store)
    assert again.planned == [] and again.applied == []
    retag = apply(validate({**doc, "tags": ["base:2"]}), store=store)
    assert kinds(retag.applied) == ["tag"]

    untag = apply(validate({"name": "base:1", "state": "absent"}), store=store)
    assert kinds(untag.applied) == ["untag"]
    assert kinds(apply(validate({"name": "base:latest", "state": "absent"}), store=store).applied) == [
        "untag"
    ]
    with store.locked():
        store.register_use("container-x", images=[done.digest])
    with pytest.raises(Conflict):  # the last name of an image a container uses
        apply(validate({"name": "base:2", "state": "absent"}), store=store)
    planned_rm = apply(
        validate({"name": "base:2", "state": "absent", "force": True}), check=True, store=store
    )
    assert kinds(planned_rm.planned) == ["remove-image"] and store.images()
    removed = apply(validate({"name": "base:2", "state": "absent", "force": True}), store=store)
    assert kinds(removed.applied)[0] == "remove-image" and store.images() == []
    assert apply(validate({"name": "base:2", "state": "absent"}), store=store).applied == []


def test_local_source_needs_the_image(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        apply(validate({"name": "nothing:1", "source": "local"}), store=ImageStore(tmp_path / "s"))


def test_build_in_check_mode_is_planned_not_run(tmp_path: Path) -> None:
    out = apply(
        validate({"name": "web:1", "build": {"context": str(tmp_path)}}),
        check=True,
        store=ImageStore(tmp_path / "s"),
    )
    assert kinds(out.planned) == ["build"] and out.digest is None
