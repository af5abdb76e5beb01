"""Bringing one image into the store, as a plan of actions then their application.

Pull and import both arrive here with a verified manifest and config: `plan_commit` compares them
with the store (which blobs, unpacked layers, record and tags are missing) and `apply_commit` runs
the actions through `berth.plan.apply`, fetching each blob with the source's own function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from berth import plan as plans
from berth.errors import IntegrityError, NotFound
from berth.images.digest import chain_ids, sha256_bytes
from berth.images.manifest import Descriptor, Manifest, parse_config, parse_manifest
from berth.images.progress import NoProgress, Progress
from berth.images.reference import parse_reference
from berth.images.store import ImageRecord, ImageStore
from berth.plan import Action


@dataclass(frozen=True)
class Incoming:
    """An image about to enter the store: manifest and config already checked against digests."""

    manifest_bytes: bytes
    media_type: str
    manifest: Manifest
    config_bytes: bytes
    config: dict[str, Any]

    @property
    def digest(self) -> str:
        return sha256_bytes(self.manifest_bytes)

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config["rootfs"]["diff_ids"])


def incoming(manifest_bytes: bytes, media_type: str, config_bytes: bytes) -> Incoming:
    manifest = parse_manifest(manifest_bytes, media_type)
    if sha256_bytes(config_bytes) != manifest.config.digest or len(config_bytes) != manifest.config.size:
        raise IntegrityError(f"image config does not match its descriptor {manifest.config.digest}")
    config = parse_config(config_bytes, len(manifest.layers))
    return Incoming(manifest_bytes, media_type, manifest, config_bytes, config)


def plan_commit(store: ImageStore, image: Incoming, tags: list[str]) -> list[Action]:
    actions: list[Action] = []
    seen: set[str] = set()
    for desc in [image.manifest.config, *image.manifest.layers]:
        if desc.digest not in seen and not store.has_blob(desc.digest, desc.size):
            actions.append(
                Action("fetch-blob", desc.digest, {"size": desc.size, "media_type": desc.media_type})
            )
        seen.add(desc.digest)
    parent = None
    for desc, chain in zip(image.manifest.layers, chain_ids(image.diff_ids), strict=True):
        if store.layer_record(chain) is None:
            actions.append(Action("unpack-layer", chain, {"blob": desc.digest, "parent": parent}))
        parent = chain
    if store.image(image.digest) is None:
        actions.append(Action("record-image", image.digest))
    current = store.tags()
    for tag in tags:
        key = parse_reference(tag).tagged
        if current.get(key) != image.digest:
            actions.append(Action("tag", key, {"digest": image.digest}))
    return actions


def apply_commit(
    store: ImageStore,
    image: Incoming,
    actions: list[Action],
    fetch: Callable[[Descriptor, Progress], None],
    source: str,
    repo_digest: str | None = None,
    progress: Progress | None = None,
) -> tuple[list[Action], ImageRecord]:
    """Run the plan under the store lock; returns what was applied and the image's record."""
    progress = progress or NoProgress()
    descs = {d.digest: d for d in [image.manifest.config, *image.manifest.layers]}
    diff = dict(
        zip(chain_ids(image.diff_ids), zip(image.manifest.layers, image.diff_ids, strict=True), strict=True)
    )

    def fetch_blob(action: Action) -> None:
        if action.target == image.manifest.config.digest:
            store.put_bytes(image.config_bytes, action.target)
        else:
            fetch(descs[action.target], progress)

    def unpack(action: Action) -> None:
        desc, diff_id = diff[action.target]
        advance = progress.task(f"unpack {desc.digest[7:19]}", desc.size)
        store.unpack_layer(desc.digest, diff_id, action.target, action.detail.get("parent"), advance)

    def record(_: Action) -> None:
        pass  # commit_image below writes the record once every layer is in place

    def tag(action: Action) -> None:
        store.set_tag(action.target, image.digest)

    handlers = {"fetch-blob": fetch_blob, "unpack-layer": unpack, "record-image": record, "tag": tag}
    non_tags = [a for a in actions if a.kind != "tag"]
    applied = plans.apply(non_tags, handlers)
    rec = store.commit_image(
        image.manifest_bytes, source, repo_digest=repo_digest, media_type=image.media_type
    )
    applied += plans.apply([a for a in actions if a.kind == "tag"], handlers)
    return applied, rec


Opener = Callable[[], Iterable[bytes]]


def commit_local(
    store: ImageStore,
    image: Incoming,
    blobs: Mapping[str, Opener],
    tags: list[str],
    source: str,
    check: bool = False,
    progress: Progress | None = None,
) -> tuple[list[Action], list[Action], ImageRecord | None]:
    """Import: every blob comes from a local opener and is verified as it is copied in.

    Returns (planned, applied, record); the caller holds the store lock unless `check`.
    """
    planned = plan_commit(store, image, tags)
    if check:
        return planned, [], None

    def fetch(desc: Descriptor, prog: Progress) -> None:
        opener = blobs.get(desc.digest)
        if opener is None:
            raise NotFound(f"blob {desc.digest} is missing from the archive")
        advance = prog.task(f"import {desc.digest[7:19]}", desc.size)

        def counted() -> Iterable[bytes]:
            for chunk in opener():
                advance(len(chunk))
                yield chunk

        store.ingest(counted(), desc.digest, desc.size, what=f"blob {desc.digest}")

    applied, record = apply_commit(store, image, planned, fetch, source, None, progress)
    return planned, applied, record
