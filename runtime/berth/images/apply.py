"""`berth image apply`: make one local image name be present (pulled, built or imported) or absent.

The declarative entry point of the image module: one JSON document in, a plan, and (unless
check) the plan applied through the existing pull, build, import, tag, push and rm code.

    {"name": REF, "state": "present"|"absent", "source": "pull"|"build"|"import"|"local",
     "force": bool, "platform": "OS/ARCH[/VARIANT]", "tags": [REF...],
     "registry": {"insecure", "ca_cert", "username", "password", "authfile", "retries", "timeout",
                  "min_rate"},
     "build": {"context", "file", "target", "args", "no_cache", "reproducible", "source_date_epoch"},
     "import": {"path", "digest", "format", "changes", "source_date_epoch"},
     "push": {"destination"} | null}

Idempotency: `pull` and `build` do nothing when NAME is already in the store unless `force`
(then a pull changes only what the registry has that the store lacks, and a build counts as a
change only when NAME ends up naming another image); `import` commits only what the archive
holds that the store lacks (a rootfs tarball's image is dated `source_date_epoch`, default 0,
so the same tarball always gives the same image); `tags` and `push` change only what differs.
An import may name the image its archive holds (`import.digest`: manifest digest or image ID):
when the store has that image the archive is not read and need not exist, which is how the
collection's action plugin copies an archive from the controller only to hosts that lack it.
The password travels in this document (stdin), never on a command line, and is never echoed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.errors import Conflict, InvalidInput, NotFound
from berth.images.digest import is_digest
from berth.images.store import ImageRecord, ImageStore
from berth.plan import Action

STATES = ("present", "absent")
SOURCES = ("pull", "build", "import", "local")
_TOP = {"name", "state", "source", "force", "platform", "tags", "registry", "build", "import", "push"}
_SECTIONS: dict[str, set[str]] = {
    "registry": {"insecure", "ca_cert", "username", "password", "authfile", "retries", "timeout", "min_rate"},
    "build": {"context", "file", "target", "args", "no_cache", "reproducible", "source_date_epoch"},
    "import": {"path", "digest", "format", "changes", "source_date_epoch"},
    "push": {"destination"},
}


@dataclass
class ApplyOutcome:
    planned: list[Action] = field(default_factory=list)
    applied: list[Action] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    digest: str | None = None


def _section(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"image apply: {key} must be an object")
    unknown = set(value) - _SECTIONS[key]
    if unknown:
        raise InvalidInput(f"image apply: unknown field(s) {key}.{', '.join(sorted(unknown))}")
    return value


def validate(doc: Any) -> dict[str, Any]:
    """Check the document's shape and its conflicts; return it with defaults filled in."""
    if not isinstance(doc, dict):
        raise InvalidInput("image apply takes a JSON object")
    unknown = set(doc) - _TOP
    if unknown:
        raise InvalidInput(f"image apply: unknown field(s) {', '.join(sorted(unknown))}")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput("image apply: name (the image reference) is required")
    from berth.images.reference import parse_reference

    parse_reference(name)  # refuses what is not a reference, with the reason
    state = doc.get("state", "present")
    if state not in STATES:
        raise InvalidInput(f"image apply: state {state!r} is not present or absent")
    given = [k for k in ("build", "import") if doc.get(k) is not None]
    source = doc.get("source") or (given[0] if len(given) == 1 else "pull")
    if source not in SOURCES:
        raise InvalidInput(f"image apply: source {source!r} is not one of {', '.join(SOURCES)}")
    if state == "absent":
        extra = [k for k in ("build", "import", "tags", "platform") if doc.get(k)]
        extra += ["push"] if doc.get("push") is not None else []
        if extra or doc.get("source"):
            raise InvalidInput(
                f"image apply: state absent conflicts with {', '.join(extra or ['source'])}: "
                "an image to remove is not obtained"
            )
    if len(given) > 1:
        raise InvalidInput("image apply: build and import are mutually exclusive")
    if given and given[0] != source:
        raise InvalidInput(f"image apply: source {source} conflicts with {given[0]}")
    if source == "build" and not _section(doc, "build").get("context"):
        raise InvalidInput("image apply: source build needs build.context")
    if source == "import":
        spec = _section(doc, "import")
        if not spec.get("path") and not spec.get("digest"):
            raise InvalidInput("image apply: source import needs import.path (or import.digest)")
        if spec.get("digest") is not None and not (
            isinstance(spec["digest"], str) and is_digest(spec["digest"])
        ):
            raise InvalidInput("image apply: import.digest must be sha256:<64 hex digits>")
    target = _section(doc, "build").get("target")
    if target is not None and (not isinstance(target, str) or not target):
        raise InvalidInput("image apply: build.target must be a stage name or index")
    tags = doc.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise InvalidInput("image apply: tags must be a list of image references")
    for tag in tags:
        parse_reference(tag)
    registry = _section(doc, "registry")
    if registry.get("password") is not None and not registry.get("username"):
        raise InvalidInput("image apply: registry.password needs registry.username")
    if "timeout" in registry or "min_rate" in registry:  # the client's import only when needed
        from berth.images.registry import checked_min_rate, checked_timeout

        checked_timeout("image apply: registry.timeout", registry.get("timeout", 30.0))
        checked_min_rate("image apply: registry.min_rate", registry.get("min_rate", 0))
    _section(doc, "push")
    return {**doc, "state": state, "source": source, "tags": tags, "force": bool(doc.get("force"))}


def _registry_options(doc: dict[str, Any], registry: str | None) -> Any:
    from berth.images.registry import Credentials, RegistryOptions, checked_min_rate, checked_timeout

    reg = _section(doc, "registry")
    creds = None
    if reg.get("username"):
        creds = Credentials(str(reg["username"]), str(reg.get("password") or ""))
    elif reg.get("authfile") and registry:
        from berth.cli.image_cmd import _authfile

        creds = _authfile(str(reg["authfile"]), registry)
    return RegistryOptions(
        insecure=bool(reg.get("insecure")),
        ca_file=reg.get("ca_cert"),
        credentials=creds,
        retries=max(0, int(reg.get("retries", 4))),
        timeout=checked_timeout("registry.timeout", reg.get("timeout", 30.0)),
        min_rate=checked_min_rate("registry.min_rate", reg.get("min_rate", 1024)),
    )


def _platform(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    parts = text.split("/")
    if len(parts) not in (2, 3):
        raise InvalidInput(f"platform {text!r}: expected OS/ARCH[/VARIANT]")
    return {"os": parts[0], "architecture": parts[1], **({"variant": parts[2]} if len(parts) == 3 else {})}


def describe(store: ImageStore, record: ImageRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {"digest": record.digest, "id": record.id, "tags": store.tags_of(record.digest)}


def apply(doc: dict[str, Any], check: bool = False, store: ImageStore | None = None) -> ApplyOutcome:
    store = store or ImageStore()
    name = doc["name"]
    before = store.find(name)
    outcome = ApplyOutcome(before=describe(store, before))
    if doc["state"] == "absent":
        _absent(store, doc, before, check, outcome)
    else:
        outcome.digest = _obtain(store, doc, before, check, outcome)
        _tags(store, doc, outcome.digest, check, outcome)
        if doc.get("push") is not None:
            _push(store, doc, outcome.digest, check, outcome)
    outcome.after = outcome.before if check else describe(store, store.find(name))
    return outcome


def _obtain(
    store: ImageStore, doc: dict[str, Any], before: ImageRecord | None, check: bool, outcome: ApplyOutcome
) -> str | None:
    """Make NAME exist; return the digest it names (None: only a build in check mode cannot know)."""
    name, source, force = doc["name"], doc["source"], doc["force"]
    if source == "local":
        if before is None:
            raise NotFound(f"no image {name!r} in the local store (source local obtains nothing)")
        return before.digest
    if source == "import":
        return _import(store, doc, check, outcome)
    if before is not None and not force:
        return before.digest
    if source == "pull":
        from berth.images.pull import pull
        from berth.images.reference import pull_reference

        options = _registry_options(doc, pull_reference(name).registry)
        out = pull(store, name, options, None, check, _platform(doc.get("platform")))
        outcome.planned += out.planned
        outcome.applied += out.applied
        return out.digest
    return _build(store, doc, before, check, outcome)


def _import(store: ImageStore, doc: dict[str, Any], check: bool, outcome: ApplyOutcome) -> str | None:
    from berth.cli.image_cmd import _detect_format

    spec = _section(doc, "import")
    hint = spec.get("digest")
    if hint:
        known = store.find(hint)
        if known is not None:  # the archive's image is here already: name it, read nothing
            return _adopt(store, doc["name"], known, check, outcome)
    path = Path(str(spec["path"])) if spec.get("path") else None
    if path is None or not path.exists():
        if hint and check:
            # The archive is not on this host (yet); only its import can say what it adds.
            outcome.planned.append(Action("import", doc["name"], {"image": hint}))
            return None
        where = f"import.path {path} does not exist on this host" if path else "no import.path"
        raise NotFound(f"{where}" + (f", and the store has no image {hint}" if hint else ""))
    fmt = spec.get("format") or "auto"
    if fmt not in ("auto", "oci", "docker-archive", "rootfs"):
        raise InvalidInput(f"import.format {fmt!r} is not auto, oci, docker-archive or rootfs")
    fmt = _detect_format(path) if fmt == "auto" else fmt
    changes = list(spec.get("changes") or [])
    if changes and fmt != "rootfs":
        raise InvalidInput("import.changes applies to rootfs tarballs only")
    if hint:
        held = archive_images(path, fmt)
        if hint not in held:
            raise InvalidInput(
                f"{path} does not hold image {hint} (import.digest): it holds {', '.join(held) or 'none'}"
            )
    tags = [doc["name"]]
    if fmt == "oci":
        from berth.images.oci_layout import import_layout

        out = import_layout(store, path, tags, check)
    elif fmt == "docker-archive":
        from berth.images.docker_archive import import_docker_archive

        out = import_docker_archive(store, path, tags, check)
    elif fmt == "rootfs":
        from berth.images.rootfs import import_rootfs

        epoch = int(spec.get("source_date_epoch") or 0)
        out = import_rootfs(store, path, tags, changes, check, None, epoch)
    else:
        raise InvalidInput(f"{path}: cannot tell its format; set import.format")
    if len(out.digests) != 1:
        raise InvalidInput(f"{path} holds {len(out.digests)} images; import one image per name")
    outcome.planned += out.planned
    outcome.applied += out.applied
    return out.digests[0]


def archive_images(path: Path, fmt: str) -> list[str]:
    """What an `import.digest` may name in an archive, read without unpacking it.

    An OCI layout: the digests its index.json lists. A docker-archive: its images' IDs (config
    digests), for it has no manifest (the store writes one on import). A rootfs tarball has no
    image before its import, so none.
    """
    import json

    from berth.images import mediatypes as mt
    from berth.images.archive import ArchiveSource
    from berth.images.digest import sha256_bytes
    from berth.images.docker_archive import _norm

    if fmt not in ("oci", "docker-archive"):
        return []
    with ArchiveSource(path) as src:
        try:
            if fmt == "oci":
                index = json.loads(src.read("index.json", mt.MAX_MANIFEST_BYTES))
                return [str(m.get("digest")) for m in index.get("manifests") or [] if isinstance(m, dict)]
            entries = json.loads(src.read("manifest.json", mt.MAX_MANIFEST_BYTES))
            configs = [_norm(str(e.get("Config", ""))) for e in entries]
            return [sha256_bytes(src.read(name, mt.MAX_CONFIG_BYTES)) for name in configs]
        except (ValueError, AttributeError, TypeError) as exc:
            raise InvalidInput(f"{path}: unreadable {fmt} index: {exc}") from exc


def _adopt(store: ImageStore, name: str, record: ImageRecord, check: bool, outcome: ApplyOutcome) -> str:
    """Point NAME at an image the store has (what an import of its archive would do)."""
    from berth.images.reference import parse_reference

    key = parse_reference(name).tagged
    if store.tags().get(key) == record.digest:
        return record.digest
    action = Action("tag", key, {"digest": record.digest})
    outcome.planned.append(action)
    if not check:
        with store.locked():
            store.set_tag(key, record.digest)
        outcome.applied.append(action)
    return record.digest


def _build(
    store: ImageStore, doc: dict[str, Any], before: ImageRecord | None, check: bool, outcome: ApplyOutcome
) -> str | None:
    spec = _section(doc, "build")
    name = doc["name"]
    detail = {"context": str(spec["context"]), "previous": before.digest if before else None}
    if spec.get("target") is not None:
        detail["target"] = str(spec["target"])
    if check:
        # RUN steps run containers, so the resulting digest is only known by building.
        outcome.planned.append(Action("build", name, detail))
        if before is not None:
            outcome.warnings.append(
                f"check mode: a forced build of {name} is reported as a change; "
                "whether its digest changes is only known by building"
            )
        return None
    from berth.images.build import BuildOptions, build

    args = spec.get("args") or {}
    if not isinstance(args, dict):
        raise InvalidInput("build.args must be an object of strings")
    options = BuildOptions(
        context=Path(str(spec["context"])),
        file=Path(str(spec["file"])) if spec.get("file") else None,
        tags=[name],
        build_args={str(k): str(v) for k, v in args.items()},
        reproducible=bool(spec.get("reproducible")),
        epoch=spec.get("source_date_epoch"),
        no_cache=bool(spec.get("no_cache")),
        registry=_registry_options(doc, None),
        target=str(spec["target"]) if spec.get("target") is not None else None,
    )
    out = build(store, options)
    outcome.warnings += out.warnings
    reaped = [a for a in out.applied if a.kind == "remove-container"]  # steps of killed builds
    outcome.planned += reaped
    outcome.applied += reaped
    if before is None or before.digest != out.digest:
        action = Action("build", name, {**detail, "digest": out.digest, "steps": len(out.steps)})
        outcome.planned.append(action)
        outcome.applied.append(action)
    return out.digest


def _tags(
    store: ImageStore, doc: dict[str, Any], digest: str | None, check: bool, outcome: ApplyOutcome
) -> None:
    from berth.images.reference import parse_reference

    current = store.tags()
    todo = []
    for tag in doc["tags"]:
        key = parse_reference(tag).tagged
        if digest is None or current.get(key) != digest:
            todo.append(Action("tag", key, {"digest": digest}))
    outcome.planned += todo
    if check or not todo:
        return
    with store.locked():
        for action in todo:
            store.set_tag(action.target, str(digest))
            outcome.applied.append(action)


def _push(
    store: ImageStore, doc: dict[str, Any], digest: str | None, check: bool, outcome: ApplyOutcome
) -> None:
    from berth.images.digest import sha256_bytes
    from berth.images.push import push
    from berth.images.reference import parse_reference
    from berth.images.registry import RegistryClient

    dest = _section(doc, "push").get("destination") or doc["name"]
    ref = parse_reference(dest)
    options = _registry_options(doc, ref.registry)
    if digest is None or store.image(digest) is None:  # check mode: not obtained yet
        outcome.planned.append(Action("push", str(ref), {"digest": digest}))
        return
    client = RegistryClient(ref.registry, options)
    try:
        data, _ = client.get_manifest(ref.repository, ref.digest or ref.tag or "latest")
        if sha256_bytes(data) == digest:
            return  # the registry serves this very manifest under that name already
    except NotFound:
        pass
    finally:
        client.close()
    out = push(store, digest, dest, options, None, check)
    outcome.planned += out.planned
    outcome.applied += out.applied


def _absent(
    store: ImageStore, doc: dict[str, Any], before: ImageRecord | None, check: bool, outcome: ApplyOutcome
) -> None:
    if before is None:
        return
    from berth.images import gc
    from berth.images.reference import DEFAULT_REGISTRY, parse_reference

    name = doc["name"]
    tags = store.tags_of(before.digest)
    key = None
    if not name.startswith("sha256:"):
        parsed = parse_reference(name)
        names = [parsed.tagged, parsed.with_registry(DEFAULT_REGISTRY).tagged]  # as find() does
        key = next((n for n in names if n in tags), None)
    if key in tags and len(tags) > 1:
        action = Action("untag", key)
    else:
        used = {d for u in store.uses().values() for d in u.get("images", [])}
        if before.digest in used and not doc["force"]:
            raise Conflict(f"image {name} is in use by a container or deployment (set force to remove it)")
        action = Action("remove-image", before.digest)
    outcome.planned.append(action)
    if check:
        return
    with store.locked():
        if action.kind == "untag":
            store.remove_tag(action.target)
        else:
            store.remove_image(before.digest)
        outcome.applied.append(action)
        outcome.applied += gc.prune(store, images=False)
