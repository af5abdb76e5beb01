"""Verify the store and collect its garbage: plan(desired, observed) -> actions, then apply.

Prune keeps what any kept image references (manifest, config, layer blobs, unpacked layers along
its chain) and what a holder registered through `ImageStore.register_use` (containers, kept
deployment revisions). The build cache is a user too: its entries keep their layers (those of
intermediate stages included) until a prune that asks for it (`build_cache`, as `podman image
prune --build-cache` / `buildah prune`), so removing one image never costs another build its
cache. Only entries that are broken already (a layer gone) go on every prune.

Verify re-hashes every blob and checks that every record points at content that is there; with
repair it removes what is broken so that the next pull or import re-fetches it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from berth import plan as plans
from berth.errors import BerthError
from berth.images.digest import is_digest
from berth.images.store import ImageRecord, ImageStore
from berth.plan import Action


@dataclass
class Observed:
    images: list[ImageRecord]
    tags: dict[str, str]
    uses: dict[str, dict[str, list[str]]]
    blobs: list[str]
    layers: list[str]
    cache: dict[str, dict[str, Any]]
    tmp: list[str]


def observe(store: ImageStore) -> Observed:
    return Observed(
        images=store.images(),
        tags=store.tags(),
        uses=store.uses(),
        blobs=store.blobs(),
        layers=store.layers(),
        cache={k: store.cache_get(k) or {} for k in store.cache_keys()},
        tmp=store.tmp_leftovers(),
    )


def plan_prune(
    observed: Observed, all_images: bool = False, images: bool = True, build_cache: bool = False
) -> list[Action]:
    """What prune removes. `images=False` keeps every image (used after `rm`: content only);
    `build_cache` (implied by `all_images`) removes the whole build cache."""
    used_images = {d for u in observed.uses.values() for d in u.get("images", [])}
    used_layers = {c for u in observed.uses.values() for c in u.get("layers", [])}
    tagged = set(observed.tags.values())
    actions: list[Action] = []
    kept: list[ImageRecord] = []
    for record in observed.images:
        dangling = record.digest not in tagged and not record.repo_digests
        doomed = images and record.digest not in used_images and (all_images or dangling)
        if doomed:
            actions.append(
                Action("remove-image", record.digest, {"reason": "unused" if all_images else "dangling"})
            )
        else:
            kept.append(record)
    blobs: set[str] = set()
    layers: set[str] = set(used_layers)
    for record in kept:
        blobs.update([record.digest, record.config, *(layer["digest"] for layer in record.layers)])
        layers.update(record.chain_ids)
    present_blobs, present_layers = set(observed.blobs), set(observed.layers)
    for key, entry in sorted(observed.cache.items()):
        needs = {layer["digest"] for layer in entry.get("layers", [])}
        chains = {layer["chain_id"] for layer in entry.get("layers", [])}
        broken = not (needs <= present_blobs and chains <= present_layers)
        if build_cache or all_images or broken:
            actions.append(Action("remove-cache", key, {"reason": "broken" if broken else "build-cache"}))
        else:
            blobs |= needs
            layers |= chains
    for name in observed.tmp:
        actions.append(Action("remove-tmp", name))
    for chain in observed.layers:
        if chain not in layers:
            actions.append(Action("remove-layer", chain))
    for blob in observed.blobs:
        if blob not in blobs:
            actions.append(Action("remove-blob", blob))
    return actions


def prune(
    store: ImageStore,
    all_images: bool = False,
    check: bool = False,
    images: bool = True,
    build_cache: bool = False,
) -> list[Action]:
    """Plan and (unless `check`) apply a prune; the caller holds the store lock when applying."""
    actions = plan_prune(observe(store), all_images, images, build_cache)
    if check:
        return actions
    handlers = {
        "remove-image": lambda a: store.remove_image(a.target),
        "remove-cache": lambda a: store.remove_cache(a.target),
        "remove-tmp": lambda a: None,  # taking the lock already cleared tmp
        "remove-layer": lambda a: store.remove_layer(a.target),
        "remove-blob": lambda a: store.remove_blob(a.target),
    }
    return plans.apply(actions, handlers)


@dataclass
class VerifyReport:
    problems: list[dict[str, str]] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    repaired: list[str] = field(default_factory=list)

    def add(self, kind: str, target: str, message: str) -> None:
        self.problems.append({"kind": kind, "target": target, "message": message})

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.problems or bool(self.repaired),
            "problems": self.problems,
            "checked": self.checked,
            "repaired": self.repaired,
        }


def verify(store: ImageStore) -> VerifyReport:
    """Check every blob's hash, every record's references and every layer's metadata."""
    report = VerifyReport()
    bad_blobs: set[str] = set()
    for blob in store.blobs():
        if not is_digest(blob):
            report.add("blob", blob, "file name is not a sha256 digest")
            bad_blobs.add(blob)
            continue
        h = hashlib.sha256()
        with open(store.blob_path(blob), "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        if "sha256:" + h.hexdigest() != blob:
            report.add("blob", blob, "content does not match its digest")
            bad_blobs.add(blob)
    bad_layers: set[str] = set()
    for chain in store.layers():
        layer_rec = store.layer_record(chain)
        if layer_rec is None or layer_rec.get("chain_id") != chain:
            report.add("layer", chain, "layer.json missing or not for this chain ID")
            bad_layers.add(chain)
        elif not store.layer_dir(chain).is_dir():
            report.add("layer", chain, "unpacked directory missing")
            bad_layers.add(chain)
    images = store.images()
    for record in images:
        for blob in [record.digest, record.config, *(layer["digest"] for layer in record.layers)]:
            if blob in bad_blobs or not store.has_blob(blob):
                report.add("image", record.digest, f"blob {blob} missing or corrupt")
        for chain in record.chain_ids:
            if chain in bad_layers or store.layer_record(chain) is None:
                report.add("image", record.digest, f"layer {chain} missing or damaged")
        try:
            store.manifest(record)
            store.config(record)
        except BerthError as exc:
            report.add("image", record.digest, exc.message)
    digests = {r.digest for r in images}
    for name, digest in store.tags().items():
        if digest not in digests:
            report.add("tag", name, f"points at {digest}, which is not in the store")
    report.checked = {
        "blobs": len(store.blobs()),
        "layers": len(store.layers()),
        "images": len(images),
        "tags": len(store.tags()),
    }
    return report


def repair(store: ImageStore, report: VerifyReport) -> None:
    """Remove what `verify` found broken: the next pull or import fetches it again."""
    for problem in report.problems:
        kind, target = problem["kind"], problem["target"]
        if kind == "blob":
            if is_digest(target):
                store.remove_blob(target)
            else:
                os.unlink(store.root / "blobs" / "sha256" / target.removeprefix("sha256:"))
        elif kind == "layer":
            store.remove_layer(target)
        elif kind == "image":
            store.remove_image(target)
        elif kind == "tag":
            store.remove_tag(target)
        report.repaired.append(f"{kind} {target}")
