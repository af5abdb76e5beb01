"""`berth image pull`: resolve a reference on a registry, then commit the image (see commit.py).

What a registry says is checked before anything is stored: the manifest's size (the registry
client caps it), its digest (when pulled by digest, through an index, or named by the registry's
Docker-Content-Digest header), its media type (the Content-Type must be a manifest type or plain
JSON, and agree with the document's own mediaType), and every descriptor (manifest.py: lowercase
sha256 digests only). A pull that fails after some blobs or layers went in takes them out again
(`_rollback`): a refused image leaves the store exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from berth.errors import IntegrityError, InvalidInput, Unsupported
from berth.images import mediatypes as mt
from berth.images.commit import Incoming, apply_commit, incoming, plan_commit
from berth.images.digest import sha256_bytes
from berth.images.manifest import Descriptor, media_type_of, parse_index, parse_manifest, select_platform
from berth.images.progress import NoProgress, Progress
from berth.images.reference import Reference, pull_reference
from berth.images.registry import RegistryClient, RegistryOptions
from berth.images.store import ImageRecord, ImageStore
from berth.plan import Action

# Content-Types a registry may answer a manifest request with, besides the manifest types:
# some send plain JSON (or nothing); anything else (text/html from a proxy's login page) is refused.
_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream", "text/plain"})


@dataclass
class PullOutcome:
    reference: str
    digest: str
    index_digest: str | None
    planned: list[Action]
    applied: list[Action] = field(default_factory=list)
    record: ImageRecord | None = None


def _media_type(data: bytes, ctype: str, what: str) -> str:
    """The document's media type, refusing a Content-Type that is no manifest or contradicts it."""
    known = mt.INDEXES | mt.MANIFESTS
    if ctype.startswith("application/vnd.docker.distribution.manifest.v1"):
        raise Unsupported(f"registry offers {what} only as a Docker schema 1 manifest (not supported)")
    if ctype not in known and ctype not in _GENERIC_TYPES:
        raise InvalidInput(f"registry answered {what} with Content-Type {ctype!r}, which is not a manifest")
    media_type = media_type_of(data, ctype)
    # An index served as a manifest (or the reverse) is type confusion: refused. Docker schema 2
    # and OCI names for the same kind of document are tolerated, as other clients do.
    if ctype in known and media_type in known and (ctype in mt.INDEXES) != (media_type in mt.INDEXES):
        raise InvalidInput(
            f"registry sent {what} as Content-Type {ctype!r}, but the document says it is {media_type!r}"
        )
    return media_type


def resolve(
    client: RegistryClient, ref: Reference, platform: dict[str, str] | None = None
) -> tuple[Incoming, str | None]:
    """Fetch and verify the manifest (through an index if need be) and the config; store nothing."""
    target = ref.digest or ref.tag or "latest"
    data, ctype = client.get_manifest(ref.repository, target)
    if ref.digest and sha256_bytes(data) != ref.digest:
        raise IntegrityError(f"registry served a manifest that does not match {ref.digest}")
    media_type = _media_type(data, ctype, f"the manifest of {ref}")
    index_digest = None
    if media_type in mt.INDEXES:
        index_digest = sha256_bytes(data)
        entries = parse_index(data)
        if entries and all(e.media_type in mt.INDEXES for e in entries):
            raise InvalidInput("image index points only at other indexes: nested indexes are refused")
        entry = select_platform(entries, platform)
        if entry.digest == index_digest:
            raise InvalidInput("image index points at itself")
        if entry.size > mt.MAX_MANIFEST_BYTES:
            raise InvalidInput(
                f"image index entry {entry.digest} is {entry.size} bytes: larger than the 4 MiB manifest cap"
            )
        data, ctype = client.get_manifest(ref.repository, entry.digest)
        if sha256_bytes(data) != entry.digest or len(data) != entry.size:
            raise IntegrityError(f"registry served a manifest that does not match {entry.digest}")
        media_type = _media_type(data, ctype, f"manifest {entry.digest}")
        if media_type in mt.INDEXES:
            raise InvalidInput("image index points at another index: nested indexes are refused")
    elif media_type not in mt.MANIFESTS:
        raise InvalidInput(f"unknown manifest media type {media_type!r}")
    manifest = parse_manifest(data, media_type)
    if manifest.config.size > mt.MAX_CONFIG_BYTES:
        raise InvalidInput(
            f"image config is {manifest.config.size} bytes: larger than the {mt.MAX_CONFIG_BYTES} allowed"
        )
    chunks: list[bytes] = []

    def collect(body: Any) -> None:
        chunks.clear()  # a retried download starts over
        size = 0
        for chunk in body:
            size += len(chunk)
            if size > manifest.config.size:
                raise IntegrityError(
                    f"image config is larger than its descriptor says ({manifest.config.size} bytes)",
                    digest=manifest.config.digest,
                )
            chunks.append(chunk)

    client.fetch_blob(ref.repository, manifest.config.digest, collect, manifest.config.size)
    return incoming(data, media_type, b"".join(chunks)), index_digest


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

            client.fetch_blob(ref.repository, desc.digest, sink, desc.size)

        with store.locked():
            planned = plan_commit(store, image, tags)  # again: another process may have done work
            outcome.planned = planned
            try:
                outcome.applied, outcome.record = apply_commit(
                    store, image, planned, fetch, "pull", repo_digest, progress
                )
            except BaseException:
                _rollback(store, image, planned)
                raise
        return outcome
    finally:
        client.close()


def _rollback(store: ImageStore, image: Incoming, planned: list[Action]) -> None:
    """Take out what this pull put in: it planned exactly what was missing, under the lock held since.

    Nothing else can have added those blobs or layers meanwhile, and no image record refers to them
    (the record is written last), so removing them restores the store as it was.
    """
    if store.image(image.digest) is not None:
        return  # the image is complete; only a tag failed: keep it
    for action in reversed(planned):
        try:
            if action.kind == "unpack-layer":
                store.remove_layer(action.target)
            elif action.kind == "fetch-blob":
                store.remove_blob(action.target)
        except OSError:
            pass  # best effort: `berth image verify`/prune see what is left
    if any(a.kind == "record-image" for a in planned):
        store.remove_blob(image.digest)  # commit_image stores the manifest just before the record
