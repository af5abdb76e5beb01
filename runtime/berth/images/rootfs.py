"""Import of a plain root filesystem tarball as a one-layer image, with `--change` metadata."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from berth.errors import InvalidInput
from berth.images import imageconfig as ic
from berth.images import mediatypes as mt
from berth.images.commit import commit_local, incoming
from berth.images.digest import sha256_bytes
from berth.images.layers import diff_id_of, media_type_by_magic
from berth.images.manifest import canonical_json
from berth.images.oci_layout import ImportOutcome
from berth.images.progress import Progress
from berth.images.store import ImageStore

_CHUNK = 1 << 20


def import_rootfs(
    store: ImageStore,
    path: Path,
    tags: list[str],
    changes: list[str],
    check: bool = False,
    progress: Progress | None = None,
    epoch: int | None = None,
) -> ImportOutcome:
    instructions = ic.parse_changes(changes)
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file")
    with open(path, "rb") as fh:
        media_type = media_type_by_magic(fh)
        diff_id = diff_id_of(fh)
        fh.seek(0)
        size = 0
        import hashlib

        h = hashlib.sha256()
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    digest = "sha256:" + h.hexdigest()
    created = ic.timestamp(epoch)
    config = ic.empty_config()
    for instr in instructions:
        config = ic.apply_metadata(config, instr, ic.env_map(config))
    config = ic.add_layer(config, diff_id, created, f"berth image import {path.name}")
    config["created"] = created
    config_bytes = canonical_json(config)
    layer = {"digest": digest, "size": size, "media_type": media_type}
    manifest = ic.oci_manifest(config_bytes, sha256_bytes(config_bytes), [layer])
    image = incoming(manifest, mt.OCI_MANIFEST, config_bytes)

    def chunks() -> Iterator[bytes]:
        with open(path, "rb") as src:
            while chunk := src.read(_CHUNK):
                yield chunk

    outcome = ImportOutcome()
    with store.locked():
        planned, applied, record = commit_local(
            store,
            image,
            {digest: chunks},
            tags,
            "import",
            check,
            progress,
        )
    outcome.digests.append(image.digest)
    outcome.planned, outcome.applied = planned, applied
    if record:
        outcome.records.append(record)
    return outcome
