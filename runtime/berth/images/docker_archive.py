"""docker-archive (`docker save` output): import into the store, export from it.

The archive's layers are uncompressed tars whose sha256 is their diff ID; imported as they are
(OCI `tar` layers, no recompression), checked against the config's diff IDs. Export writes the
classic layout (`<config>.json`, `<diff id>/layer.tar`, manifest.json) that docker, podman and
skopeo all read.
"""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from pathlib import Path

from berth.errors import Conflict, IntegrityError, InvalidInput
from berth.images import imageconfig as ic
from berth.images import mediatypes as mt
from berth.images.archive import ArchiveSource
from berth.images.commit import commit_local, incoming
from berth.images.digest import hex_of, parse_digest, sha256_bytes
from berth.images.extract import open_decompressed
from berth.images.layers import media_type_by_magic
from berth.images.manifest import parse_config
from berth.images.oci_layout import ImportOutcome, _opener
from berth.images.progress import Progress
from berth.images.store import ImageRecord, ImageStore


def import_docker_archive(
    store: ImageStore, path: Path, tags: list[str], check: bool = False, progress: Progress | None = None
) -> ImportOutcome:
    outcome = ImportOutcome()
    with ArchiveSource(path) as src:
        if not src.exists("manifest.json"):
            raise InvalidInput(f"{path} is not a docker-archive (no manifest.json)")
        try:
            entries = json.loads(src.read("manifest.json", mt.MAX_MANIFEST_BYTES))
        except ValueError as exc:
            raise InvalidInput(f"{path}: manifest.json is not JSON: {exc}") from exc
        if not isinstance(entries, list) or not entries:
            raise InvalidInput(f"{path}: manifest.json lists no images")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
                raise InvalidInput(f"{path}: malformed manifest.json entry")
            layer_names = entry.get("Layers")
            if not isinstance(layer_names, list) or not all(isinstance(n, str) for n in layer_names):
                raise InvalidInput(f"{path}: manifest.json entry has no Layers list")
            config_bytes = src.read(_norm(entry["Config"]), mt.MAX_CONFIG_BYTES)
            config = parse_config(config_bytes, len(layer_names))
            layers = []
            blobs = {}
            for raw_name, diff_id in zip(layer_names, config["rootfs"]["diff_ids"], strict=True):
                name = _norm(raw_name)
                digest, size, media_type, got_diff = _describe(src, name)
                if got_diff != diff_id:
                    raise IntegrityError(
                        f"{path}: layer {name} has diff ID {got_diff}, the config says {diff_id}"
                    )
                layers.append({"digest": digest, "size": size, "media_type": media_type})
                blobs[digest] = _opener(src, name)
            manifest = ic.oci_manifest(config_bytes, sha256_bytes(config_bytes), layers)
            image = incoming(manifest, mt.OCI_MANIFEST, config_bytes)
            names = list(tags) or [t for t in entry.get("RepoTags") or [] if isinstance(t, str)]
            with store.locked():
                planned, applied, record = commit_local(store, image, blobs, names, "import", check, progress)
            outcome.digests.append(image.digest)
            outcome.planned += planned
            outcome.applied += applied
            if record:
                outcome.records.append(record)
    return outcome


def _norm(name: str) -> str:
    import posixpath

    return posixpath.normpath(name.lstrip("/")).removeprefix("./")


def _describe(src: ArchiveSource, name: str) -> tuple[str, int, str, str]:
    """Digest, size, media type and diff ID of one layer file (read twice if compressed)."""
    import hashlib

    h = hashlib.sha256()
    size = 0
    head = b""
    for chunk in src.chunks(name):
        if not head:
            head = chunk[:4]
        h.update(chunk)
        size += len(chunk)
    digest = "sha256:" + h.hexdigest()
    if not head.startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd")):
        return digest, size, mt.OCI_LAYER, digest
    from berth.images.chunks import ChunkReader

    class _Seekable(ChunkReader):
        def seek(self, offset: int, whence: int = 0) -> int:
            self.__init__(src.chunks(name))  # type: ignore[misc]
            return 0

    reader = _Seekable(src.chunks(name))
    media_type = media_type_by_magic(reader)  # type: ignore[arg-type]
    stream = open_decompressed(reader)  # type: ignore[arg-type]
    dh = hashlib.sha256()
    while chunk := stream.read(1 << 20):
        dh.update(chunk)
    return digest, size, media_type, "sha256:" + dh.hexdigest()


def export_docker_archive(store: ImageStore, record: ImageRecord, dest: Path, tags: list[str]) -> None:
    if dest.exists():
        raise Conflict(f"{dest} exists")
    manifest = store.manifest(record)
    config_bytes = store.read_blob(record.config)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.layers."))
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as tf,
        ):
            config_name = f"{hex_of(record.config)}.json"
            _add_bytes(tf, config_name, config_bytes)
            names = []
            for layer, desc in zip(record.layers, manifest.layers, strict=True):
                name = f"{hex_of(parse_digest(layer['diff_id']))}/layer.tar"
                plain = work / "layer.tar"
                with open(store.blob_path(desc.digest), "rb") as fh, open(plain, "wb") as out:
                    stream = open_decompressed(fh)
                    while chunk := stream.read(1 << 20):
                        out.write(chunk)
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = plain.stat().st_size, 0o644, 0
                with open(plain, "rb") as fh2:
                    tf.addfile(info, fh2)
                plain.unlink()
                names.append(name)
            doc = [{"Config": config_name, "RepoTags": tags, "Layers": names}]
            _add_bytes(tf, "manifest.json", json.dumps(doc).encode())
        os.rename(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tf.addfile(info, io.BytesIO(data))
