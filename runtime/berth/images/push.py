"""`berth image push`: upload what the registry lacks (HEAD first), then the manifest."""

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
            for desc in [*manifest.layers, manifest.config]:
                if client.blob_exists(ref.repository, desc.digest) is None:
                    actions.append(Action("upload-blob", desc.digest, {"size": desc.size}))
            reference = ref.digest or ref.tag or "latest"
            actions.append(Action("put-manifest", f"{ref.name}:{reference}", {"digest": record.digest}))
            outcome = PushOutcome(str(ref), record.digest, actions)
            if check:
                return outcome
            sizes = {d.digest: d.size for d in [*manifest.layers, manifest.config]}

            def upload(action: Action) -> None:
                digest, size = action.target, sizes[action.target]
                advance = progress.task(f"push {digest[7:19]}", size)
                client.upload_blob(
                    ref.repository, digest, size, lambda: store.iter_blob(digest, size), advance
                )

            def put_manifest(_: Action) -> None:
                got = client.put_manifest(ref.repository, reference, manifest_bytes, record.media_type)
                if got and got != record.digest:
                    raise IntegrityError(f"registry computed manifest digest {got}, expected {record.digest}")

            outcome.applied = plans.apply(actions, {"upload-blob": upload, "put-manifest": put_manifest})
            return outcome
    finally:
        client.close()
