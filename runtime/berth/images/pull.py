"""`berth image pull`: resolve a reference on a registry, then commit the image (see commit.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from berth.errors import IntegrityError, InvalidInput
from berth.images import mediatypes as mt
from berth.images.commit import Incoming, apply_commit, incoming, plan_commit
from berth.images.digest import sha256_bytes
from berth.images.manifest import Descriptor, media_type_of, parse_index, select_platform
from berth.images.progress import NoProgress, Progress
from berth.images.reference import Reference, pull_reference
from berth.images.registry import RegistryClient, RegistryOptions
from berth.images.store import ImageRecord, ImageStore
from berth.plan import Action


@dataclass
class PullOutcome:
    reference: str
    digest: str
    index_digest: str | None
    planned: list[Action]
    applied: list[Action] = field(default_factory=list)
    record: ImageRecord | None = None


def resolve(
    client: RegistryClient, ref: Reference, platform: dict[str, str] | None = None
) -> tuple[Incoming, str | None]:
    """Fetch and verify the manifest (through an index if need be) and the config; store nothing."""
    target = ref.digest or ref.tag or "latest"
    data, ctype = client.get_manifest(ref.repository, target)
    if ref.digest and sha256_bytes(data) != ref.digest:
        raise IntegrityError(f"registry served a manifest that does not match {ref.digest}")
    media_type = media_type_of(data, ctype)
    index_digest = None
    if media_type in mt.INDEXES:
        index_digest = sha256_bytes(data)
        entry = select_platform(parse_index(data), platform)
        data, ctype = client.get_manifest(ref.repository, entry.digest)
        if sha256_bytes(data) != entry.digest or len(data) != entry.size:
            raise IntegrityError(f"registry served a manifest that does not match {entry.digest}")
        media_type = media_type_of(data, ctype)
        if media_type in mt.INDEXES:
            raise InvalidInput("image index points at another index: nested indexes are refused")
    elif media_type not in mt.MANIFESTS:
        raise InvalidInput(f"unknown manifest media type {media_type!r}")
    from berth.images.manifest import parse_manifest

    manifest = parse_manifest(data, media_type)
    chunks: list[bytes] = []
    size = 0
    for chunk in _fetch_small(client, ref.repository, manifest.config):
        size += len(chunk)
        if size > mt.MAX_CONFIG_BYTES:
            raise InvalidInput("image config is too large")
        chunks.append(chunk)
    return incoming(data, media_type, b"".join(chunks)), index_digest


def _fetch_small(client: RegistryClient, repo: str, desc: Descriptor) -> list[bytes]:
    out: list[bytes] = []
    client.fetch_blob(repo, desc.digest, out.extend)
    return out


def pull(
    store: ImageStore,
    text: str,
    options: RegistryOptions | None = None,
    progress: Progress | None = None,
    check: bool = False,
    platform: dict[str, str] | None = None,
) -> PullOutcome:
    ref = pull_reference(text)
    progress = progress or NoProgress()
    client = RegistryClient(ref.registry, options)
    try:
        image, index_digest = resolve(client, ref, platform)
        tags = [] if ref.digest and not ref.tag else [ref.tagged]
        repo_digest = f"{ref.name}@{index_digest or image.digest}"
        outcome = PullOutcome(str(ref), image.digest, index_digest, plan_commit(store, image, tags))
        if check:
            return outcome

        def fetch(desc: Descriptor, prog: Progress) -> None:
            advance = prog.task(f"pull {desc.digest[7:19]}", desc.size)

            def sink(chunks: Any) -> Any:
                def counted() -> Any:
                    for chunk in chunks:
                        advance(len(chunk))
                        yield chunk

                return store.ingest(counted(), desc.digest, desc.size, what=f"blob {desc.digest}")

            client.fetch_blob(ref.repository, desc.digest, sink)

        with store.locked():
            planned = plan_commit(store, image, tags)  # again: another process may have done work
            outcome.planned = planned
            outcome.applied, outcome.record = apply_commit(
                store, image, planned, fetch, "pull", repo_digest, progress
            )
        return outcome
    finally:
        client.close()
