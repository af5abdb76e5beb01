"""`berth image push`: upload what the registry lacks (HEAD first), then the manifest.

A blob the registry already has in another repository (the image was pulled from there: its
record's repo digests say so) is mounted across repositories instead of uploaded. Every call
asks for the same push scope, so one bearer token serves the whole push.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from berth import plan as plans
from berth.errors import IntegrityError, InvalidInput
from berth.images.progress import NoProgress, Progress
from berth.images.reference import LOCAL_REGISTRY, has_registry, parse_reference
from berth.images.registry import RegistryClient, RegistryOptions
from berth.images.store import ImageStore
from berth.plan import Action


@dataclass
class PushOutcome:
    reference: str
    digest: str
    planned: list[Action]
    applied: list[Action] = field(default_factory=list)


def push(
    store: ImageStore,
    source: str,
    dest: str | None = None,
    options: RegistryOptions | None = None,
    progress: Progress | None = None,
    check: bool = False,
) -> PushOutcome:
    target = dest or source
    if not has_registry(target) or parse_reference(target).registry == LOCAL_REGISTRY:
        raise InvalidInput(f"{target!r} names no registry: push to REGISTRY/NAME[:TAG]")
    ref = parse_reference(target)
    progress = progress or NoProgress()
    client = RegistryClient(ref.registry, options)
    try:
        with store.locked():  # no prune may remove a blob while it is being uploaded
            record = store.resolve(source)
            manifest_bytes = store.read_blob(record.digest)
            manifest = store.manifest(record)
            actions: list[Action] = []
            scope = f"repository:{ref.repository}:pull,push"
            for desc in [*manifest.layers, manifest.config]:
                if client.blob_exists(ref.repository, desc.digest, scope) is None:
                    actions.append(Action("upload-blob", desc.digest, {"size": desc.size}))
            reference = ref.digest or ref.tag or "latest"
            actions.append(Action("put-manifest", f"{ref.name}:{reference}", {"digest": record.digest}))
            outcome = PushOutcome(str(ref), record.digest, actions)
            if check:
                return outcome
            sizes = {d.digest: d.size for d in [*manifest.layers, manifest.config]}
            sources = _mount_sources(record.repo_digests, ref.registry, ref.repository)
            hows: dict[str, str] = {}  # digest -> uploaded, chunked, mounted or exists

            def upload(action: Action) -> None:
                digest, size = action.target, sizes[action.target]
                advance = progress.task(f"push {digest[7:19]}", size)
                how = client.upload_blob(
                    ref.repository, digest, size, lambda: store.iter_blob(digest, size), advance, sources
                )
                hows[digest] = how

            def put_manifest(_: Action) -> None:
                got = client.put_manifest(ref.repository, reference, manifest_bytes, record.media_type)
                if got and got != record.digest:
                    raise IntegrityError(f"registry computed manifest digest {got}, expected {record.digest}")

            applied = plans.apply(actions, {"upload-blob": upload, "put-manifest": put_manifest})
            outcome.applied = [
                Action(a.kind, a.target, {**a.detail, "how": hows[a.target]}) if a.target in hows else a
                for a in applied
            ]
            return outcome
    finally:
        client.close()


def _mount_sources(repo_digests: list[str], registry: str, repository: str) -> list[str]:
    """Repositories of the same registry the image came from: blobs can be mounted from them."""
    out = []
    for item in repo_digests:
        try:
            other = parse_reference(item)
        except InvalidInput:
            continue
        if other.registry == registry and other.repository != repository:
            out.append(other.repository)
    return list(dict.fromkeys(out))
