"""The local image store: content-addressed blobs, unpacked layers by chain ID, images and tags.

Layout under `<data dir>/images` (or `$BERTH_DATA_DIR/images`):

    .lock                      one FileLock: every mutation of the store runs under it
    tmp/                       work area; whatever is there when the lock is taken is debris of
                               a killed process and is removed (nothing in it is ever visible)
    blobs/sha256/<hex>         manifests, configs and compressed layers, verified before rename
    layers/<chain hex>/        layer.json + diff/ (an overlay lower dir), renamed in when complete
    images/<manifest hex>.json one record per image, written after all its content is in place
    tags.json                  `registry/repo:tag` -> manifest digest
    uses/<holder>.json         images and layers a container or deployment revision holds
    cache/<key hex>.json       build cache entries

Writes go to tmp first and are renamed into place only once verified, so an interrupted pull,
import or build leaves nothing a later run could mistake for complete content.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from berth.errors import BerthError, Conflict, IntegrityError, InvalidInput, NotFound
from berth.images import mediatypes as mt
from berth.images.digest import chain_ids, hex_of, is_digest, parse_digest, sha256_bytes
from berth.images.extract import ExtractPolicy, extract_layer
from berth.images.manifest import Manifest, media_type_of, parse_config, parse_manifest
from berth.images.reference import DEFAULT_REGISTRY, has_registry, parse_reference
from berth.state.atomic import atomic_write_json, fsync_dir, read_json
from berth.state.store import data_dir

_CHUNK = 1 << 20
_HOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,200}")


def default_root() -> Path:
    return data_dir() / "images"


@dataclass
class ImageRecord:
    """What the store knows of one image: derived from its manifest and config, plus provenance."""

    digest: str
    media_type: str
    config: str
    layers: list[dict[str, Any]]
    created: str | None = None
    platform: str = ""
    source: str = ""
    repo_digests: list[str] = field(default_factory=list)
    added: str = ""

    @property
    def id(self) -> str:
        return self.config

    @property
    def size(self) -> int:
        return sum(int(layer["size"]) for layer in self.layers)

    @property
    def chain_ids(self) -> list[str]:
        return [layer["chain_id"] for layer in self.layers]

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "media_type": self.media_type,
            "config": self.config,
            "layers": self.layers,
            "created": self.created,
            "platform": self.platform,
            "source": self.source,
            "repo_digests": self.repo_digests,
            "added": self.added,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ImageRecord:
        return cls(
            digest=doc["digest"],
            media_type=doc["media_type"],
            config=doc["config"],
            layers=list(doc["layers"]),
            created=doc.get("created"),
            platform=doc.get("platform", ""),
            source=doc.get("source", ""),
            repo_digests=list(doc.get("repo_digests", [])),
            added=doc.get("added", ""),
        )


class ImageStore:
    """See the module docstring. Reads need no lock; every mutation runs inside `locked()`."""

    # Lock depth per store root, for the whole process: a file lock taken twice by one process
    # (two ImageStore objects) would wait for itself, so every instance shares one count.
    _held: ClassVar[dict[Path, int]] = {}

    def __init__(self, root: Path | None = None, policy: ExtractPolicy | None = None) -> None:
        self.root = root or default_root()
        self.policy = policy or ExtractPolicy()

    # -- locking and scratch space ------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, timeout: float = -1) -> Iterator[ImageStore]:
        """Hold the store lock; the first holder clears debris that killed processes left in tmp.

        Re-entrant within one process, across instances: a build that pulls its base, a
        container create that resolves its image while its caller holds the lock already.
        """
        from filelock import FileLock, Timeout

        key = self.root.absolute()
        if self._held.get(key, 0) > 0:
            self._held[key] += 1
            try:
                yield self
            finally:
                self._held[key] -= 1
            return
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / ".lock"))
        try:
            lock.acquire(timeout=timeout)
        except Timeout as exc:
            raise Conflict("another berth process holds the image store lock") from exc
        self._held[key] = 1
        try:
            self._clear_tmp()
            yield self
        finally:
            self._held[key] = 0
            lock.release()

    def _need_lock(self) -> None:
        if self._held.get(self.root.absolute(), 0) <= 0:
            raise AssertionError("image store mutated without its lock")

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def _clear_tmp(self) -> None:
        if self.tmp.exists():
            for entry in os.listdir(self.tmp):
                _remove_tree(self.tmp / entry)

    def tmp_leftovers(self) -> list[str]:
        try:
            return sorted(os.listdir(self.tmp))
        except FileNotFoundError:
            return []

    def scratch_dir(self, prefix: str = "work-") -> Path:
        """A fresh directory under tmp (same filesystem as the store, so renames are atomic)."""
        self._need_lock()
        self.tmp.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.tmp))

    # -- blobs -----------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / hex_of(digest)

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        try:
            st = self.blob_path(digest).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def ingest(
        self, chunks: Iterable[bytes], digest: str | None = None, size: int | None = None, what: str = "blob"
    ) -> tuple[str, int]:
        """Stream content into the store; verify digest and size before it becomes visible."""
        self._need_lock()
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            total = 0
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    total += len(chunk)
                    if size is not None and total > size:
                        raise IntegrityError(f"{what} is larger than its declared size {size}", digest=digest)
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            got = "sha256:" + h.hexdigest()
            if size is not None and total != size:
                raise IntegrityError(
                    f"{what} has {total} bytes, its descriptor says {size}", digest=digest, size=total
                )
            if digest is not None and got != digest:
                raise IntegrityError(f"{what} does not match its digest: got {got}", digest=digest)
            self._commit_blob(tmp, got)
            return got, total
        finally:
            tmp.unlink(missing_ok=True)

    def ingest_file(self, path: Path, digest: str | None = None, size: int | None = None) -> tuple[str, int]:
        with open(path, "rb") as fh:
            return self.ingest(iter(lambda: fh.read(_CHUNK), b""), digest, size)

    def put_bytes(self, data: bytes, digest: str | None = None) -> str:
        return self.ingest([data], digest, len(data) if digest else None)[0]

    def _commit_blob(self, tmp: Path, digest: str) -> None:
        final = self.blob_path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o644)
        os.rename(tmp, final)  # same content if it was there: replacing it is harmless
        fsync_dir(final.parent)

    def read_blob(self, digest: str, limit: int = mt.MAX_CONFIG_BYTES) -> bytes:
        """A small blob (manifest, config), verified against its digest on every read."""
        try:
            with open(self.blob_path(digest), "rb") as fh:
                data = fh.read(limit + 1)
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store", digest=digest) from None
        if len(data) > limit:
            raise InvalidInput(f"blob {digest} is larger than {limit} bytes")
        if sha256_bytes(data) != digest:
            raise IntegrityError(f"stored blob {digest} is corrupt (run `berth image verify --repair`)")
        return data

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store", digest=digest) from None

    def iter_blob(self, digest: str, size: int | None = None) -> Iterator[bytes]:
        """Stream a stored blob, checking at the end that it still matches its digest."""
        h = hashlib.sha256()
        total = 0
        with self.open_blob(digest) as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
                total += len(chunk)
                yield chunk
        if "sha256:" + h.hexdigest() != digest or (size is not None and total != size):
            raise IntegrityError(f"stored blob {digest} is corrupt (run `berth image verify --repair`)")

    # -- layers ----------------------------------------------------------------------------------
    def layer_root(self, chain_id: str) -> Path:
        return self.root / "layers" / hex_of(chain_id)

    def layer_dir(self, chain_id: str) -> Path:
        """The unpacked layer: an overlay lower dir (whiteouts and opaque dirs in overlay form)."""
        return self.layer_root(chain_id) / "diff"

    def layer_record(self, chain_id: str) -> dict[str, Any] | None:
        try:
            record: dict[str, Any] = read_json(self.layer_root(chain_id) / "layer.json")
        except (FileNotFoundError, ValueError):
            return None
        return record

    def unpack_layer(
        self, blob: str, diff_id: str, chain_id: str, parent: str | None, progress: Any = None
    ) -> dict[str, Any]:
        """Extract a stored layer blob under its chain ID, unless it is already there."""
        self._need_lock()
        existing = self.layer_record(chain_id)
        if existing is not None:
            return existing
        work = self.scratch_dir("layer-")
        (work / "diff").mkdir()
        os.chmod(work / "diff", 0o755)
        blob_path = self.blob_path(blob)
        try:
            size = blob_path.stat().st_size
        except FileNotFoundError:
            raise NotFound(f"layer blob {blob} is not in the store") from None
        try:
            with open(blob_path, "rb") as fh:
                src = _HashingFile(fh, progress)
                report = extract_layer(src, work / "diff", self.policy, compressed_size=size)  # type: ignore[arg-type]
                src.drain()
        except BaseException:
            _remove_tree(work)  # a refused layer leaves no half-extracted tree behind, not even in tmp
            raise
        if src.digest() != blob:
            _remove_tree(work)
            self.blob_path(blob).unlink(missing_ok=True)
            raise IntegrityError(f"stored layer blob {blob} was corrupt: removed, fetch it again")
        if report.diff_id != diff_id:
            _remove_tree(work)
            raise IntegrityError(
                f"layer {blob} unpacks to diff ID {report.diff_id}, the image config says {diff_id}"
            )
        record = {
            "chain_id": chain_id,
            "diff_id": diff_id,
            "parent": parent,
            "blob": blob,
            **{k: v for k, v in report.to_json().items() if k != "diff_id"},
        }
        atomic_write_json(work / "layer.json", record)
        final = self.layer_root(chain_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(work, final)
        except OSError:
            if self.layer_record(chain_id) is None:
                raise
            _remove_tree(work)
        fsync_dir(final.parent)
        return record

    def layers(self) -> list[str]:
        try:
            names = os.listdir(self.root / "layers")
        except FileNotFoundError:
            return []
        return sorted(f"sha256:{n}" for n in names if is_digest(f"sha256:{n}"))

    # -- images and tags -------------------------------------------------------------------------
    def _image_path(self, digest: str) -> Path:
        return self.root / "images" / f"{hex_of(digest)}.json"

    def image(self, digest: str) -> ImageRecord | None:
        try:
            return ImageRecord.from_json(read_json(self._image_path(digest)))
        except FileNotFoundError:
            return None

    def images(self) -> list[ImageRecord]:
        out = []
        try:
            names = sorted(os.listdir(self.root / "images"))
        except FileNotFoundError:
            return []
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                record = self.image(f"sha256:{name[:-5]}")
                if record is not None:
                    out.append(record)
        return out

    def commit_image(
        self,
        manifest_bytes: bytes,
        source: str,
        tags: Iterable[str] = (),
        repo_digest: str | None = None,
        media_type: str | None = None,
        progress: Any = None,
    ) -> ImageRecord:
        """Make an image visible: its blobs must be stored; layers are unpacked; record, then tags."""
        self._need_lock()
        media_type = media_type or media_type_of(manifest_bytes)
        manifest = parse_manifest(manifest_bytes, media_type)
        digest = self.put_bytes(manifest_bytes)
        record = self._record(digest, manifest, source, progress)
        old = self.image(digest)
        if old is not None:
            record.repo_digests = sorted(set(old.repo_digests))
            record.added = old.added
            record.source = old.source or source
        if repo_digest and repo_digest not in record.repo_digests:
            record.repo_digests.append(repo_digest)
        atomic_write_json(self._image_path(digest), record.to_json())
        for tag in tags:
            self.set_tag(tag, digest)
        return record

    def _record(self, digest: str, manifest: Manifest, source: str, progress: Any) -> ImageRecord:
        for desc in [manifest.config, *manifest.layers]:
            if not self.has_blob(desc.digest, desc.size):
                raise NotFound(f"blob {desc.digest} of image {digest} is not in the store")
        config = parse_config(self.read_blob(manifest.config.digest), len(manifest.layers))
        diff_ids: list[str] = config["rootfs"]["diff_ids"]
        chains = chain_ids(diff_ids)
        layers = []
        parent = None
        for desc, diff_id, chain in zip(manifest.layers, diff_ids, chains, strict=True):
            self.unpack_layer(desc.digest, diff_id, chain, parent, progress)
            layers.append(
                {
                    "digest": desc.digest,
                    "size": desc.size,
                    "media_type": desc.media_type,
                    "diff_id": diff_id,
                    "chain_id": chain,
                }
            )
            parent = chain
        plat = "/".join(str(config.get(k)) for k in ("os", "architecture") if config.get(k))
        return ImageRecord(
            digest=digest,
            media_type=manifest.media_type,
            config=manifest.config.digest,
            layers=layers,
            created=config.get("created") if isinstance(config.get("created"), str) else None,
            platform=plat,
            source=source,
            added=_now(),
        )

    def manifest(self, record: ImageRecord) -> Manifest:
        return parse_manifest(self.read_blob(record.digest, mt.MAX_MANIFEST_BYTES), record.media_type)

    def config(self, record: ImageRecord) -> dict[str, Any]:
        return parse_config(self.read_blob(record.config), len(record.layers))

    def tags(self) -> dict[str, str]:
        try:
            doc: dict[str, str] = read_json(self.root / "tags.json")
        except FileNotFoundError:
            return {}
        return doc

    def tags_of(self, digest: str) -> list[str]:
        return sorted(name for name, d in self.tags().items() if d == digest)

    def set_tag(self, name: str, digest: str) -> None:
        self._need_lock()
        key = parse_reference(name).tagged
        tags = self.tags()
        if tags.get(key) != digest:
            tags[key] = digest
            atomic_write_json(self.root / "tags.json", tags)

    def remove_tag(self, name: str) -> bool:
        self._need_lock()
        tags = self.tags()
        if tags.pop(name, None) is None:
            return False
        atomic_write_json(self.root / "tags.json", tags)
        return True

    def resolve(self, ref: str) -> ImageRecord:
        """An image by tag (`name[:tag]`), manifest digest, image ID (config digest) or ID prefix."""
        record = self.find(ref)
        if record is None:
            raise NotFound(f"no image {ref!r} in the local store", reference=ref)
        return record

    def find(self, ref: str) -> ImageRecord | None:
        if ref.startswith("sha256:") and is_digest(ref):
            record = self.image(ref)
            if record is not None:
                return record
            return next((r for r in self.images() if r.config == ref), None)
        if re.fullmatch(r"(sha256:)?[0-9a-f]{6,64}", ref):
            prefix = ref.removeprefix("sha256:")
            matches = {r.digest: r for r in self.images() if hex_of(r.config).startswith(prefix)}
            if len(matches) > 1:
                raise InvalidInput(f"image ID prefix {ref!r} is ambiguous")
            if matches:
                return next(iter(matches.values()))
        tags = self.tags()
        parsed = parse_reference(ref)
        keys = [parsed.tagged]
        if not has_registry(ref):
            keys.append(parsed.with_registry(DEFAULT_REGISTRY).tagged)
        if parsed.digest:
            return self.image(parsed.digest)
        for key in keys:
            if key in tags:
                return self.image(tags[key])
        return None

    def remove_image(self, digest: str) -> None:
        self._need_lock()
        tags = self.tags()
        kept = {k: v for k, v in tags.items() if v != digest}
        if kept != tags:
            atomic_write_json(self.root / "tags.json", kept)
        path = self._image_path(digest)
        if path.exists():
            path.unlink()
            fsync_dir(path.parent)

    # -- users of images and layers (containers, deployment revisions) ----------------------------
    def register_use(self, holder: str, images: Iterable[str] = (), layers: Iterable[str] = ()) -> None:
        """Record that `holder` (e.g. `container:web-1`) needs these images/layers: prune keeps them."""
        self._need_lock()
        if not _HOLDER.fullmatch(holder):
            raise InvalidInput(f"invalid holder name {holder!r}")
        doc = {
            "images": sorted({parse_digest(d) for d in images}),
            "layers": sorted({parse_digest(c) for c in layers}),
        }
        atomic_write_json(self.root / "uses" / f"{holder}.json", doc)

    def release_use(self, holder: str) -> bool:
        self._need_lock()
        if not _HOLDER.fullmatch(holder):
            raise InvalidInput(f"invalid holder name {holder!r}")
        path = self.root / "uses" / f"{holder}.json"
        if not path.exists():
            return False
        path.unlink()
        return True

    def uses(self) -> dict[str, dict[str, list[str]]]:
        out: dict[str, dict[str, list[str]]] = {}
        try:
            names = os.listdir(self.root / "uses")
        except FileNotFoundError:
            return out
        for name in sorted(names):
            if name.endswith(".json") and not name.startswith("."):
                out[name[:-5]] = read_json(self.root / "uses" / name)
        return out

    # -- build cache -----------------------------------------------------------------------------
    def cache_get(self, key: str) -> dict[str, Any] | None:
        try:
            entry: dict[str, Any] = read_json(self.root / "cache" / f"{hex_of(key)}.json")
        except (FileNotFoundError, ValueError):
            return None
        return entry

    def cache_put(self, key: str, entry: dict[str, Any]) -> None:
        self._need_lock()
        atomic_write_json(self.root / "cache" / f"{hex_of(key)}.json", entry)

    def cache_keys(self) -> list[str]:
        try:
            names = os.listdir(self.root / "cache")
        except FileNotFoundError:
            return []
        return sorted(
            f"sha256:{n[:-5]}" for n in names if n.endswith(".json") and is_digest(f"sha256:{n[:-5]}")
        )

    # -- removal ---------------------------------------------------------------------------------
    def remove_blob(self, digest: str) -> None:
        self._need_lock()
        self.blob_path(digest).unlink(missing_ok=True)

    def remove_layer(self, chain_id: str) -> None:
        """Rename away first, so a half-deleted layer is never visible under its chain ID."""
        self._need_lock()
        root = self.layer_root(chain_id)
        if not root.exists():
            return
        self.tmp.mkdir(parents=True, exist_ok=True)
        doomed = Path(tempfile.mkdtemp(prefix="gone-", dir=self.tmp)) / "layer"
        os.rename(root, doomed)
        fsync_dir(root.parent)
        _remove_tree(doomed.parent)

    def remove_cache(self, key: str) -> None:
        self._need_lock()
        (self.root / "cache" / f"{hex_of(key)}.json").unlink(missing_ok=True)

    def blobs(self) -> list[str]:
        try:
            names = os.listdir(self.root / "blobs" / "sha256")
        except FileNotFoundError:
            return []
        return sorted(f"sha256:{n}" for n in names)


class _HashingFile:
    """A seekable-at-start file wrapper that hashes the compressed bytes as extraction reads them."""

    def __init__(self, fh: BinaryIO, progress: Any = None) -> None:
        self.fh = fh
        self.h = hashlib.sha256()
        self.pos = 0
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.h.update(data)
        self.pos += len(data)
        if self.progress is not None:
            self.progress(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) != (0, 0):
            raise BerthError("layer stream can only rewind to its start")
        # extract peeks at the magic number and rewinds: forget those bytes.
        self.fh.seek(0)
        self.h = hashlib.sha256()
        self.pos = 0
        return 0

    def tell(self) -> int:
        return self.pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self.h.hexdigest()


def _remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=False)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
