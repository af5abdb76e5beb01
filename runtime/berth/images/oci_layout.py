"""OCI image layout (a directory, or a tar of one): import into the store, export from it."""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.errors import Conflict, InvalidInput
from berth.images import mediatypes as mt
from berth.images.archive import ArchiveSource
from berth.images.chunks import ChunkReader
from berth.images.commit import commit_local, incoming
from berth.images.digest import hex_of, sha256_bytes
from berth.images.manifest import canonical_json, media_type_of, parse_index, parse_manifest, select_platform
from berth.images.progress import Progress
from berth.images.store import ImageRecord, ImageStore
from berth.plan import Action

REF_NAME = "org.opencontainers.image.ref.name"


@dataclass
class ImportOutcome:
    digests: list[str] = field(default_factory=list)
    planned: list[Action] = field(default_factory=list)
    applied: list[Action] = field(default_factory=list)
    records: list[ImageRecord] = field(default_factory=list)


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{hex_of(digest)}"


def import_layout(
    store: ImageStore, path: Path, tags: list[str], check: bool = False, progress: Progress | None = None
) -> ImportOutcome:
    outcome = ImportOutcome()
    with ArchiveSource(path) as src:
        if not src.exists("index.json"):
            raise InvalidInput(f"{path} is not an OCI image layout (no index.json)")
        layout = json.loads(src.read("oci-layout", 4096)) if src.exists("oci-layout") else {}
        if layout.get("imageLayoutVersion", "1.0.0") != "1.0.0":
            raise InvalidInput(f"unsupported OCI layout version {layout.get('imageLayoutVersion')!r}")
        entries = parse_index(src.read("index.json", mt.MAX_MANIFEST_BYTES))
        if not entries:
            raise InvalidInput(f"{path}: index.json lists no manifests")
        blobs = {}
        for entry in entries:
            data = _verified(src, entry.digest, entry.size)
            media_type = media_type_of(data, entry.media_type)
            if media_type in mt.INDEXES:
                chosen = select_platform(parse_index(data))
                data = _verified(src, chosen.digest, chosen.size)
                media_type = media_type_of(data, chosen.media_type)
            manifest = parse_manifest(data, media_type)
            config = _verified(src, manifest.config.digest, manifest.config.size)
            image = incoming(data, media_type, config)
            for desc in manifest.layers:
                blobs[desc.digest] = _opener(src, _blob_name(desc.digest))
            names = list(tags)
            ref = entry.annotations.get(REF_NAME)
            if not names and ref:
                names = [ref if ("/" in ref or ":" in ref) else f"localhost/imported:{ref}"]
            with store.locked():
                planned, applied, record = commit_local(store, image, blobs, names, "import", check, progress)
            outcome.digests.append(image.digest)
            outcome.planned += planned
            outcome.applied += applied
            if record:
                outcome.records.append(record)
    return outcome


def _opener(src: ArchiveSource, name: str) -> Callable[[], Iterator[bytes]]:
    return lambda: src.chunks(name)


def _verified(src: ArchiveSource, digest: str, size: int) -> bytes:
    data = src.read(_blob_name(digest), max(size, 0) if size <= mt.MAX_CONFIG_BYTES else mt.MAX_CONFIG_BYTES)
    if len(data) != size or sha256_bytes(data) != digest:
        from berth.errors import IntegrityError

        raise IntegrityError(f"{_blob_name(digest)} does not match its descriptor (digest or size)")
    return data


def export_layout(store: ImageStore, record: ImageRecord, dest: Path, ref_name: str | None) -> list[str]:
    """Write an OCI layout with this one image (directory, or a tar when dest ends in .tar)."""
    manifest = store.manifest(record)
    desc: dict[str, Any] = {
        "mediaType": record.media_type,
        "digest": record.digest,
        "size": len(store.read_blob(record.digest, mt.MAX_MANIFEST_BYTES)),
    }
    if ref_name:
        desc["annotations"] = {REF_NAME: ref_name}
    index = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [desc]})
    layout = canonical_json({"imageLayoutVersion": "1.0.0"})
    blobs = [(record.digest, None), (manifest.config.digest, manifest.config.size)]
    blobs += [(layer.digest, layer.size) for layer in manifest.layers]
    if dest.suffix == ".tar":
        if dest.exists():
            raise Conflict(f"{dest} exists")
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        try:
            with (
                os.fdopen(fd, "wb") as raw,
                tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as tf,
            ):
                _tar_bytes(tf, "oci-layout", layout)
                _tar_bytes(tf, "index.json", index)
                for digest, size in _unique(blobs):
                    _tar_blob(tf, store, _blob_name(digest), digest, size)
            os.rename(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return [d for d, _ in _unique(blobs)]
    if dest.exists() and any(dest.iterdir()):
        raise Conflict(f"{dest} exists and is not empty")
    (dest / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    for digest, size in _unique(blobs):
        target = dest / _blob_name(digest)
        with open(target, "wb") as out:
            for chunk in store.iter_blob(digest, size):
                out.write(chunk)
    (dest / "oci-layout").write_bytes(layout)
    (dest / "index.json").write_bytes(index)
    return [d for d, _ in _unique(blobs)]


def _unique(blobs: list[tuple[str, int | None]]) -> list[tuple[str, int | None]]:
    seen: set[str] = set()
    out = []
    for digest, size in blobs:
        if digest not in seen:
            seen.add(digest)
            out.append((digest, size))
    return out


def _tar_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tf.addfile(info, io.BytesIO(data))


def _tar_blob(tf: tarfile.TarFile, store: ImageStore, name: str, digest: str, size: int | None) -> None:
    info = tarfile.TarInfo(name)
    info.size = store.blob_path(digest).stat().st_size
    info.mode, info.mtime = 0o644, 0
    tf.addfile(info, ChunkReader(store.iter_blob(digest, size)))
