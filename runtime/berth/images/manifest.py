"""Parsing and validating manifests, indexes and configs: everything a registry or archive says.

Nothing from outside is trusted before it passes here: digests must be well-formed sha256, sizes
non-negative integers, media types known, the config's diff IDs as many as the layers.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from typing import Any

from berth.errors import InvalidInput, Unsupported
from berth.images import mediatypes as mt
from berth.images.digest import parse_digest


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            out["platform"] = self.platform
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]


def _json(data: bytes, what: str, limit: int = mt.MAX_MANIFEST_BYTES) -> dict[str, Any]:
    if len(data) > limit:
        raise InvalidInput(f"{what} is {len(data)} bytes: larger than the {limit} allowed")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what} is not a JSON object")
    return doc


def descriptor(raw: Any, what: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{what} is not a descriptor object")
    size = raw.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(f"{what} has an invalid size {size!r}")
    media_type = raw.get("mediaType")
    if not isinstance(media_type, str):
        raise InvalidInput(f"{what} has no media type")
    annotations = raw.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise InvalidInput(f"{what} has invalid annotations")
    plat = raw.get("platform")
    return Descriptor(
        media_type,
        parse_digest(raw.get("digest"), f"digest of {what}"),
        size,
        plat if isinstance(plat, dict) else None,
        {str(k): str(v) for k, v in annotations.items()},
    )


def media_type_of(data: bytes, header: str | None = None) -> str:
    """The document's own mediaType, else the Content-Type the registry sent, else by shape."""
    doc = _json(data, "manifest")
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if header and header.split(";")[0].strip() in mt.INDEXES | mt.MANIFESTS:
        return header.split(";")[0].strip()
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc and "layers" in doc:
        return mt.OCI_MANIFEST
    raise InvalidInput("unknown manifest media type (no mediaType, no recognisable shape)")


def parse_manifest(data: bytes, media_type: str) -> Manifest:
    if media_type not in mt.MANIFESTS:
        raise InvalidInput(f"unknown manifest media type {media_type!r}")
    doc = _json(data, "manifest")
    if doc.get("schemaVersion") != 2:
        raise InvalidInput(f"unsupported manifest schemaVersion {doc.get('schemaVersion')!r}")
    config = descriptor(doc.get("config"), "manifest config")
    if config.media_type not in mt.CONFIGS:
        raise InvalidInput(f"unknown config media type {config.media_type!r}")
    raw_layers = doc.get("layers")
    if not isinstance(raw_layers, list):
        raise InvalidInput("manifest has no layers list")
    layers = [descriptor(item, f"layer {i}") for i, item in enumerate(raw_layers)]
    for layer in layers:
        if layer.media_type in mt.FOREIGN_LAYERS:
            raise Unsupported(f"layer {layer.digest} is a foreign (non-distributable) layer")
        if layer.media_type not in mt.LAYERS:
            raise InvalidInput(f"unknown layer media type {layer.media_type!r}")
    return Manifest(media_type, config, layers)


def parse_index(data: bytes) -> list[Descriptor]:
    doc = _json(data, "image index")
    raw = doc.get("manifests")
    if not isinstance(raw, list):
        raise InvalidInput("image index has no manifests list")
    return [descriptor(item, f"index entry {i}") for i, item in enumerate(raw)]


def host_platform() -> dict[str, str]:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}.get(
        machine, machine
    )
    out = {"os": "linux", "architecture": arch}
    if arch == "arm64":
        out["variant"] = "v8"
    return out


def select_platform(entries: list[Descriptor], want: dict[str, str] | None = None) -> Descriptor:
    """The index entry for `want` (default: this host); attestation manifests never match."""
    want = want or host_platform()
    candidates = [e for e in entries if e.media_type in mt.MANIFESTS and e.platform]
    for entry in candidates:
        plat = entry.platform or {}
        if plat.get("os") != want["os"] or plat.get("architecture") != want["architecture"]:
            continue
        if want.get("variant") and plat.get("variant") not in (None, want["variant"]):
            continue
        return entry
    offered = sorted(
        {f"{(e.platform or {}).get('os')}/{(e.platform or {}).get('architecture')}" for e in candidates}
    )
    raise InvalidInput(
        f"the image index has no manifest for {want['os']}/{want['architecture']} (it offers {offered})"
    )


def parse_config(data: bytes, layer_count: int) -> dict[str, Any]:
    doc = _json(data, "image config", mt.MAX_CONFIG_BYTES)
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidInput("image config has no rootfs of type layers")
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list):
        raise InvalidInput("image config has no diff_ids list")
    for i, d in enumerate(diff_ids):
        parse_digest(d, f"diff ID {i}")
    if len(diff_ids) != layer_count:
        raise InvalidInput(f"image config lists {len(diff_ids)} diff IDs for {layer_count} layers")
    return doc


def canonical_json(obj: Any) -> bytes:
    """The bytes Berth writes for configs and manifests it creates: stable, so digests repeat."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
