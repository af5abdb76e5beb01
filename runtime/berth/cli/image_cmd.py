"""`berth image`: build, pull, push, import, export, ls, inspect, rm, tag, prune, verify.

JSON contract (`data`):
- pull/push/import/build: {"reference"?, "digest", "id"?, "steps"?} with `actions` the actions applied
  (planned ones with --check, and then `changed` means "would change").
- ls: {"images": [{"digest", "id", "tags", "repo_digests", "size", "created", "platform", "source"}]}
- inspect: the ls entry plus "config" (the image config) and "layers".
- apply (declarative, used by the modules; see images/apply.py): {"name", "state", "digest", "image",
  "check_mode"} plus a before/after `diff`.
- rm/tag/prune: the actions applied. verify: {"ok", "problems", "checked", "repaired"}; problems
  found and not repaired are an `integrity-error`.
Progress bars go to stderr only for people at a terminal; never with --json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from berth.cli.common import add_command
from berth.cli.result import Result
from berth.errors import Conflict, IntegrityError, InvalidInput

if TYPE_CHECKING:
    from berth.images.progress import Progress
    from berth.images.registry import RegistryOptions
    from berth.images.store import ImageRecord, ImageStore
    from berth.plan import Action


def register(sub: Any) -> None:
    parser = add_command(sub, "image", _need_subcommand, "manage images in the local store")
    images = parser.add_subparsers(dest="image_command", metavar="SUBCOMMAND", required=True)

    p = add_command(images, "build", run_build, "build an image from a Containerfile", "image build")
    p.add_argument("context", help="the build context directory")
    p.add_argument("-f", "--file", help="the Containerfile (default: CONTEXT/Containerfile or Dockerfile)")
    p.add_argument("-t", "--tag", action="append", default=[], help="name the image (repeatable)")
    p.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-cache", action="store_true", help="do not reuse cached steps")
    p.add_argument("--target", default=None, metavar="STAGE", help="stop at this stage (default: last)")
    p.add_argument("--reproducible", action="store_true", help="fixed timestamps: same input, same digest")
    p.add_argument("--source-date-epoch", type=int, default=None, metavar="SECONDS")
    _registry_options(p)

    p = add_command(images, "pull", run_pull, "pull an image from a registry", "image pull")
    p.add_argument("reference")
    p.add_argument("--platform", default=None, metavar="OS/ARCH[/VARIANT]")
    p.add_argument("--check", action="store_true", help="plan only: say what would be fetched")
    _registry_options(p)

    p = add_command(images, "push", run_push, "push an image to a registry", "image push")
    p.add_argument("source", help="a local image")
    p.add_argument("destination", nargs="?", help="REGISTRY/NAME[:TAG] (default: the source name)")
    p.add_argument("--check", action="store_true", help="plan only: say what would be uploaded")
    _registry_options(p)

    p = add_command(
        images, "import", run_import, "import an OCI layout, docker-archive or rootfs tar", "image import"
    )
    p.add_argument("path")
    p.add_argument("--format", choices=["auto", "oci", "docker-archive", "rootfs"], default="auto")
    p.add_argument("-t", "--tag", action="append", default=[])
    p.add_argument("-c", "--change", action="append", default=[], help="rootfs only: e.g. 'CMD [\"sh\"]'")
    p.add_argument("--check", action="store_true")

    p = add_command(
        images, "export", run_export, "export an image as an OCI layout or docker-archive", "image export"
    )
    p.add_argument("reference")
    p.add_argument("destination", help="a directory, or a .tar file")
    p.add_argument("--format", choices=["oci", "docker-archive"], default="oci")

    add_command(images, "ls", run_ls, "list images", "image ls")
    p = add_command(images, "inspect", run_inspect, "show an image's record and config", "image inspect")
    p.add_argument("reference")
    p = add_command(images, "rm", run_rm, "remove images (or one of their tags)", "image rm")
    p.add_argument("references", nargs="+")
    p.add_argument("--force", action="store_true", help="also when a container or deployment uses it")
    p = add_command(images, "tag", run_tag, "give an image more names", "image tag")
    p.add_argument("source")
    p.add_argument("targets", nargs="+")
    p = add_command(images, "prune", run_prune, "remove what nothing uses", "image prune")
    p.add_argument(
        "--all", action="store_true", help="also images that have tags but no user, and the build cache"
    )
    p.add_argument("--build-cache", action="store_true", help="also the build cache (every stage's steps)")
    p.add_argument("--check", action="store_true")
    p = add_command(
        images,
        "apply",
        run_apply,
        "make an image present or absent (modules)",
        "image apply",
    )
    p.add_argument("-f", "--file", required=True, metavar="SPEC", help="JSON (see images/apply.py) or -")
    p.add_argument("--check", action="store_true", help="plan only: change nothing")
    p = add_command(images, "verify", run_verify, "re-hash and cross-check the store", "image verify")
    p.add_argument("--repair", action="store_true", help="remove what is broken (then pull again)")


def _registry_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--insecure", action="store_true", help="plain http (for loopback registries)")
    p.add_argument("--ca-cert", default=None, help="trust this CA bundle for the registry's TLS")
    p.add_argument("--username", default=None)
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--authfile", default=None, help='a containers-auth.json ({"auths": {...}})')
    p.add_argument("--retries", type=int, default=4)
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up on a registry that sends nothing for this long (per attempt; default 30)",
    )
    p.add_argument(
        "--min-rate",
        type=int,
        default=1024,
        metavar="BYTES_PER_S",
        help="give up on a blob download slower than this over each --timeout seconds (0: no floor)",
    )
    p.add_argument("--chunk-size", type=int, default=0, help="upload in chunks of this many bytes")


def _need_subcommand(args: argparse.Namespace) -> Result:
    raise InvalidInput("berth image needs a subcommand")


# -- helpers ---------------------------------------------------------------------------------
def _store() -> ImageStore:
    from berth.images.store import ImageStore

    return ImageStore()


def _progress(args: argparse.Namespace) -> Progress:
    from berth.images.progress import NoProgress

    if getattr(args, "json", False) or not sys.stderr.isatty():
        return NoProgress()
    return _RichProgress()


class _RichProgress:
    """Rich progress bars on stderr, started on first use."""

    def __init__(self) -> None:
        self.bars: Any = None

    def task(self, description: str, total: int | None) -> Any:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        if self.bars is None:
            self.bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self.bars.start()
        task = self.bars.add_task(description, total=total)
        return lambda n: self.bars.advance(task, n)

    def stop(self) -> None:
        if self.bars is not None:
            self.bars.stop()


def _finish(progress: Any) -> None:
    if isinstance(progress, _RichProgress):
        progress.stop()


def _registry(args: argparse.Namespace, registry_for_auth: str | None) -> RegistryOptions:
    from berth.images.registry import Credentials, RegistryOptions, checked_min_rate, checked_timeout

    creds = None
    if args.username:
        if not args.password_stdin:
            raise InvalidInput("--username needs --password-stdin (passwords never go on the command line)")
        password = sys.stdin.readline().rstrip("\n")
        creds = Credentials(args.username, password)
    elif args.authfile and registry_for_auth:
        creds = _authfile(args.authfile, registry_for_auth)
    return RegistryOptions(
        insecure=args.insecure,
        ca_file=args.ca_cert,
        credentials=creds,
        retries=max(0, args.retries),
        timeout=checked_timeout("--timeout", args.timeout),
        min_rate=checked_min_rate("--min-rate", args.min_rate),
        chunk_size=max(0, args.chunk_size),
    )


def _authfile(path: str, registry: str) -> Any:
    import base64
    import json

    from berth.images.registry import Credentials

    try:
        with open(path, encoding="utf-8") as fh:
            auths = json.load(fh).get("auths", {})
        raw = auths.get(registry, {}).get("auth")
        if not raw:
            return None
        user, _, password = base64.b64decode(raw).decode().partition(":")
    except (OSError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"cannot read the auth file {path}: {type(exc).__name__}") from None
    return Credentials(user, password)


def _registry_of(text: str) -> str | None:
    from berth.images.reference import pull_reference

    try:
        return pull_reference(text).registry
    except InvalidInput:
        return None


def _entry(store: ImageStore, record: ImageRecord, tags: dict[str, str]) -> dict[str, Any]:
    return {
        "digest": record.digest,
        "id": record.id,
        "tags": sorted(name for name, d in tags.items() if d == record.digest),
        "repo_digests": record.repo_digests,
        "size": record.size,
        "created": record.created,
        "platform": record.platform,
        "source": record.source,
    }


def _actions_text(actions: list[Action], check: bool) -> str:
    if not actions:
        return "unchanged"
    counts: dict[str, int] = {}
    for a in actions:
        counts[a.kind] = counts.get(a.kind, 0) + 1
    return ("would: " if check else "") + ", ".join(f"{k} x{n}" for k, n in counts.items())


# -- commands --------------------------------------------------------------------------------
def run_pull(args: argparse.Namespace) -> Result:
    from berth.images.pull import pull

    platform = None
    if args.platform:
        parts = args.platform.split("/")
        if len(parts) not in (2, 3):
            raise InvalidInput(f"--platform {args.platform!r}: expected OS/ARCH[/VARIANT]")
        platform = {
            "os": parts[0],
            "architecture": parts[1],
            **({"variant": parts[2]} if len(parts) == 3 else {}),
        }
    progress = _progress(args)
    try:
        out = pull(
            _store(),
            args.reference,
            _registry(args, _registry_of(args.reference)),
            progress,
            args.check,
            platform,
        )
    finally:
        _finish(progress)
    actions = out.planned if args.check else out.applied
    data = {
        "reference": out.reference,
        "digest": out.digest,
        "index_digest": out.index_digest,
        "id": out.record.id if out.record else None,
        "check_mode": args.check,
    }
    return Result(
        data=data,
        changed=bool(actions),
        actions=actions,
        text=lambda: f"{out.reference}: {out.digest} ({_actions_text(actions, args.check)})",
    )


def run_push(args: argparse.Namespace) -> Result:
    from berth.images.push import push

    progress = _progress(args)
    dest = args.destination or args.source
    try:
        out = push(
            _store(), args.source, args.destination, _registry(args, _registry_of(dest)), progress, args.check
        )
    finally:
        _finish(progress)
    actions = out.planned if args.check else out.applied
    data = {"reference": out.reference, "digest": out.digest, "check_mode": args.check}
    return Result(
        data=data,
        changed=bool(actions),
        actions=actions,
        text=lambda: f"{out.reference}: {out.digest} ({_actions_text(actions, args.check)})",
    )


def run_build(args: argparse.Namespace) -> Result:
    from berth.images.build import BuildOptions, build

    build_args = {}
    for item in args.build_arg:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InvalidInput(f"--build-arg {item!r}: expected KEY=VALUE")
        build_args[key] = value
    options = BuildOptions(
        context=Path(args.context),
        file=Path(args.file) if args.file else None,
        tags=args.tag,
        build_args=build_args,
        reproducible=args.reproducible,
        epoch=args.source_date_epoch,
        no_cache=args.no_cache,
        registry=_registry(args, None),
        target=args.target,
    )
    progress = _progress(args)
    try:
        out = build(_store(), options, progress)
    finally:
        _finish(progress)
    data = {"digest": out.digest, "id": out.record.id, "tags": args.tag, "steps": out.steps}
    cached = sum(1 for s in out.steps if s["cached"])
    return Result(
        data=data,
        changed=True,
        actions=out.applied,
        warnings=out.warnings,
        text=lambda: f"built {out.digest} ({len(out.steps)} steps, {cached} cached)",
    )


def _detect_format(path: Path) -> str:
    import tarfile

    if path.is_dir():
        return "oci" if (path / "index.json").exists() else "unknown"
    try:
        with tarfile.open(path, "r:*") as tf:
            names = {m.name.removeprefix("./") for m in tf.getmembers()[:10000]}
    except (OSError, tarfile.TarError) as exc:
        raise InvalidInput(f"{path} is not a directory or readable tar: {exc}") from exc
    if "index.json" in names and "oci-layout" in names:
        return "oci"
    if "manifest.json" in names:
        return "docker-archive"
    return "rootfs"


def run_import(args: argparse.Namespace) -> Result:
    path = Path(args.path)
    if not path.exists():
        raise InvalidInput(f"{path} does not exist")
    fmt = args.format if args.format != "auto" else _detect_format(path)
    if args.change and fmt != "rootfs":
        raise InvalidInput("--change applies to rootfs tarballs only")
    store, progress = _store(), _progress(args)
    try:
        if fmt == "oci":
            from berth.images.oci_layout import import_layout

            out = import_layout(store, path, args.tag, args.check, progress)
        elif fmt == "docker-archive":
            from berth.images.docker_archive import import_docker_archive

            out = import_docker_archive(store, path, args.tag, args.check, progress)
        elif fmt == "rootfs":
            from berth.images.rootfs import import_rootfs

            out = import_rootfs(store, path, args.tag, args.change, args.check, progress)
        else:
            raise InvalidInput(f"{path}: cannot tell its format; pass --format")
    finally:
        _finish(progress)
    actions = out.planned if args.check else out.applied
    data = {
        "format": fmt,
        "digests": out.digests,
        "digest": out.digests[0] if out.digests else None,
        "check_mode": args.check,
    }
    return Result(
        data=data,
        changed=bool(actions),
        actions=actions,
        text=lambda: f"imported {', '.join(out.digests)} ({_actions_text(actions, args.check)})",
    )


def run_export(args: argparse.Namespace) -> Result:
    from berth.images.reference import parse_reference
    from berth.plan import Action

    store = _store()
    dest = Path(args.destination)
    with store.locked():
        record = store.resolve(args.reference)
        tags = store.tags_of(record.digest)
        if args.format == "oci":
            from berth.images.oci_layout import export_layout

            ref = None
            if not args.reference.startswith("sha256:"):
                ref = parse_reference(args.reference).tag or "latest"
            export_layout(store, record, dest, ref)
        else:
            from berth.images.docker_archive import export_docker_archive

            if dest.suffix != ".tar":
                raise InvalidInput("docker-archive exports to a .tar file")
            export_docker_archive(store, record, dest, tags)
    actions = [Action("export", str(dest), {"digest": record.digest, "format": args.format})]
    return Result(
        data={"digest": record.digest, "destination": str(dest), "format": args.format},
        changed=True,
        actions=actions,
        text=lambda: f"exported {record.digest} to {dest}",
    )


def run_ls(args: argparse.Namespace) -> Result:
    store = _store()
    tags = store.tags()
    images = [_entry(store, r, tags) for r in store.images()]

    def text() -> str:
        rows = [f"{'NAME':50} {'ID':14} {'SIZE':>10}  CREATED"]
        for img in images:
            for name in img["tags"] or ["<none>"]:
                rows.append(f"{name:50} {img['id'][7:19]:14} {img['size']:>10}  {img['created'] or ''}")
        return "\n".join(rows)

    return Result(data={"images": images}, text=text)


def run_inspect(args: argparse.Namespace) -> Result:
    store = _store()
    record = store.resolve(args.reference)
    data = _entry(store, record, store.tags())
    data["media_type"] = record.media_type
    data["layers"] = record.layers
    data["config"] = store.config(record)
    return Result(data=data)


def run_rm(args: argparse.Namespace) -> Result:
    from berth.images import gc
    from berth.images.reference import parse_reference
    from berth.plan import Action

    store = _store()
    applied: list[Action] = []
    with store.locked():
        used = {d for u in store.uses().values() for d in u.get("images", [])}
        for ref in args.references:
            record = store.resolve(ref)
            tags = store.tags_of(record.digest)
            key = None
            if not ref.startswith("sha256:"):
                try:
                    key = parse_reference(ref).tagged
                except InvalidInput:
                    key = None
            if key in tags and len(tags) > 1:
                store.remove_tag(key)
                applied.append(Action("untag", key))
                continue
            if record.digest in used and not args.force:
                raise Conflict(f"image {ref} is in use by a container or deployment (use --force)")
            store.remove_image(record.digest)
            applied.append(Action("remove-image", record.digest))
        applied += gc.prune(store, images=False)
    return Result(
        data={"removed": [a.target for a in applied if a.kind == "remove-image"]},
        changed=bool(applied),
        actions=applied,
        text=lambda: _actions_text(applied, False),
    )


def run_tag(args: argparse.Namespace) -> Result:
    from berth.images.reference import parse_reference
    from berth.plan import Action

    store = _store()
    applied: list[Action] = []
    with store.locked():
        record = store.resolve(args.source)
        tags = store.tags()
        for target in args.targets:
            key = parse_reference(target).tagged
            if tags.get(key) != record.digest:
                store.set_tag(key, record.digest)
                applied.append(Action("tag", key, {"digest": record.digest}))
    return Result(
        data={"digest": record.digest, "tags": [parse_reference(t).tagged for t in args.targets]},
        changed=bool(applied),
        actions=applied,
        text=lambda: _actions_text(applied, False),
    )


def run_prune(args: argparse.Namespace) -> Result:
    from berth.images import gc
    from berth.images.run_step import reap_orphaned_steps

    store = _store()
    # First the step containers of killed builds: they run on store layers no use record holds.
    reaped, warnings = reap_orphaned_steps(check=args.check)
    if args.check:
        actions = reaped + gc.prune(store, all_images=args.all, check=True, build_cache=args.build_cache)
    else:
        with store.locked():
            actions = reaped + gc.prune(store, all_images=args.all, build_cache=args.build_cache)
    data = {
        "removed": {k: sum(1 for a in actions if a.kind == k) for k in sorted({a.kind for a in actions})},
        "check_mode": args.check,
    }
    return Result(
        data=data,
        changed=bool(actions),
        actions=actions,
        warnings=warnings,
        text=lambda: _actions_text(actions, args.check),
    )


def run_verify(args: argparse.Namespace) -> Result:
    from berth.images import gc

    store = _store()
    with store.locked():
        report = gc.verify(store)
        if report.problems and args.repair:
            gc.repair(store, report)
    data = report.to_json()
    if report.problems and not report.repaired:
        raise IntegrityError(f"image store has {len(report.problems)} problem(s)", **data)
    text = "store verified: " + ", ".join(f"{n} {k}" for k, n in report.checked.items())
    if report.repaired:
        text += f"; repaired {len(report.repaired)} problem(s): pull or import again"
    return Result(data=data, changed=bool(report.repaired), text=lambda: text)


def run_apply(args: argparse.Namespace) -> Result:
    from berth.cli.common import read_json_input
    from berth.images.apply import apply, validate

    doc = validate(read_json_input(args.file))
    outcome = apply(doc, args.check)
    actions = outcome.planned if args.check else outcome.applied
    state = doc["state"]
    diff = {
        "before": {"state": "present" if outcome.before else "absent", "image": outcome.before},
        "after": {
            "state": state,
            "image": (outcome.after if not args.check else None) if state == "present" else None,
        },
    }
    if args.check and state == "present":
        diff["after"]["image"] = {"digest": outcome.digest} if outcome.digest else None
    data = {
        "name": doc["name"],
        "state": state,
        "digest": outcome.digest if state == "present" else None,
        "image": outcome.after if state == "present" else None,
        "check_mode": args.check,
    }
    return Result(
        data=data,
        changed=bool(actions),
        actions=actions,
        warnings=outcome.warnings,
        diff=diff,
        text=lambda: f"{doc['name']}: {_actions_text(actions, args.check)}",
    )
