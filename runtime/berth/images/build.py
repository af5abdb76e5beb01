"""`berth image build`: a Containerfile to an image in the local store.

A Containerfile may have several stages (see `stages`): the ones the target needs are built in
order, each from its FROM, and the image is the target stage alone (its layers and config).
COPY --from reads an earlier stage's (or an image's) layers directly, through `stagefs`.

Each step turns the build state (layers + config) into the next one. Metadata steps change the
config; COPY and ADD write one layer tar from the context (sorted, ownership applied, mtimes
clamped when reproducible) which is also the step's content hash; RUN goes through `run_step`.
Every step's result is cached under sha256(parent state, instruction, content hash), so an
unchanged rebuild only re-hashes the copied files. Heredocs are part of the instruction (hence of
the key); `RUN <<EOF` runs the heredoc as BuildKit does (`_run_command`); `COPY <<EOF` and ADD of
a URL write files the build makes itself (`_Inline`). A URL is downloaded by the builder (`fetch`)
on every build unless `--checksum` names the content, which then is the key. The image is
committed (record, then tags) only after the last step, under the store lock: an interrupted
build leaves nothing visible. A build killed during a RUN step cannot remove its step
container, so every build first removes those of builds that are gone
(`run_step.reap_orphaned_steps`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import posixpath
import re
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.errors import BerthError, InvalidInput, NotFound, Unsupported
from berth.images import imageconfig as ic
from berth.images.containerfile import Heredoc, Instruction, expand, parse, parse_marker, words
from berth.images.digest import chain_ids, sha256_bytes
from berth.images.extract import ExtractPolicy, extract_layer
from berth.images.fetch import (
    Fetched,
    FetchLimits,
    Validators,
    fetch,
    file_name,
    is_url,
    parse_checksum,
    redact,
    unchanged,
)
from berth.images.gitsource import GitSource, parse_git
from berth.images.gitsource import checkout as checkout_git
from berth.images.gitsource import resolve as resolve_git
from berth.images.ignore import Ignore, load_ignore
from berth.images.layers import add_entry, dir_to_tar, info_for, pack_layer, tar_writer
from berth.images.layerview import LayerView
from berth.images.manifest import canonical_json
from berth.images.progress import NoProgress, Progress
from berth.images.registry import RegistryOptions
from berth.images.run_step import reap_orphaned_steps
from berth.images.run_step import run_step as default_run_step
from berth.images.stagefs import StageTree
from berth.images.stages import BuildPlan, Source, Stage, declare_args, plan
from berth.images.store import ImageRecord, ImageStore
from berth.plan import Action

RunStep = Callable[..., None]


@dataclass
class State:
    layers: list[dict[str, Any]]
    config: dict[str, Any]

    def key(self) -> str:
        """Identity of the state for cache keys: layers and config, without timestamps."""
        cfg = {k: v for k, v in self.config.items() if k not in ("history", "created")}
        return sha256_bytes(canonical_json({"layers": [x["digest"] for x in self.layers], "config": cfg}))


@dataclass
class BuildOptions:
    context: Path
    file: Path | None = None
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    reproducible: bool = False
    epoch: int | None = None
    no_cache: bool = False
    registry: RegistryOptions | None = None
    target: str | None = None  # the stage to stop at (default: the last one)
    fetch_limits: FetchLimits = field(default_factory=FetchLimits)  # ADD URL: size cap, timeouts


@dataclass
class BuildOutcome:
    digest: str
    steps: list[dict[str, Any]]
    applied: list[Action]
    record: ImageRecord
    warnings: list[str] = field(default_factory=list)


def containerfile_path(context: Path, file: Path | None) -> Path:
    if file is not None:
        return file
    for name in ("Containerfile", "Dockerfile"):
        if (context / name).is_file():
            return context / name
    raise NotFound(f"no Containerfile or Dockerfile in {context}")


def build(
    store: ImageStore,
    options: BuildOptions,
    progress: Progress | None = None,
    run_step: RunStep = default_run_step,
) -> BuildOutcome:
    progress = progress or NoProgress()
    reaped, warnings = reap_orphaned_steps()
    context = options.context.resolve()
    if not context.is_dir():
        raise InvalidInput(f"build context {options.context} is not a directory")
    path = containerfile_path(context, options.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    build_plan = plan(parse(text, path.name), options.build_args, options.target, path.name)
    epoch = options.epoch if options.epoch is not None else (0 if options.reproducible else None)
    if options.reproducible and options.epoch is None and os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        epoch = int(os.environ["SOURCE_DATE_EPOCH"])
    created = ic.timestamp(epoch)
    builder = _Builder(store, context, load_ignore(context), options, epoch, created, progress, run_step)
    with store.locked():
        state = builder.run(build_plan)
        # The image was created when its last step was (as docker does): a fully cached rebuild
        # then gives the very same config, hence the same digest.
        history = state.config.get("history") or [{}]
        config_bytes = canonical_json({**state.config, "created": history[-1].get("created") or created})
        config_digest = store.put_bytes(config_bytes)
        manifest = ic.oci_manifest(config_bytes, config_digest, state.layers)
        record = store.commit_image(manifest, "build")
        applied = [*reaped, Action("record-image", record.digest)]
        for tag in options.tags:
            store.set_tag(tag, record.digest)
            applied.append(Action("tag", tag, {"digest": record.digest}))
    return BuildOutcome(record.digest, builder.steps, applied, record, warnings)


class _Builder:
    def __init__(
        self,
        store: ImageStore,
        context: Path,
        ignore: Ignore,
        options: BuildOptions,
        epoch: int | None,
        created: str,
        progress: Progress,
        run_step: RunStep,
    ) -> None:
        self.store = store
        self.context = context
        self.ignore = ignore
        self.options = options
        self.epoch = epoch
        self.created = created
        self.progress = progress
        self.run_step = run_step
        self.steps: list[dict[str, Any]] = []
        self.args: dict[str, str] = {}  # the current stage's ARGs
        self.stage = 0
        self.plan = BuildPlan({}, [], 0, [])
        self.images: dict[str, ImageRecord] = {}
        self._fetched: list[Fetched] = []  # the current step's downloads (ADD of URLs)
        self._git_commits: dict[str, str] = {}  # the current step's repository -> resolved commit

    # -- the step loop ---------------------------------------------------------------------------
    def run(self, build_plan: BuildPlan) -> State:
        """Build the stages the target needs, in order; the target's state is the image."""
        self.plan = build_plan
        # Every image the build needs is found (or pulled) first: a missing one fails the build
        # before any step runs.
        for index in build_plan.needed:
            stage = build_plan.stages[index]
            if stage.base.image is not None and stage.base.image != "scratch":
                self._base_image(stage.instr, stage.base.image)
            for pos, source in stage.copies.items():
                if source.image is not None:
                    self._from_image(stage.body[pos], source.image)
        results: dict[int, State] = {}
        for index in build_plan.needed:
            results[index] = self._stage(build_plan.stages[index], results)
        return results[build_plan.target]

    def _record(self, instr: Instruction, cached: bool) -> None:
        self.steps.append(
            {"line": instr.line, "instruction": _shown(instr), "cached": cached, "stage": self.stage}
        )

    def _stage(self, stage: Stage, results: dict[int, State]) -> State:
        self.stage = stage.index
        self.args = {}  # each stage has its own ARGs
        state = self._from(stage, results)
        for pos, instr in enumerate(stage.body):
            if instr.keyword == "ARG":
                env = ic.env_map(state.config)
                self.args.update(
                    declare_args(instr, self.options.build_args, self.args, self.plan.global_args, env)
                )
                continue
            state = self._step(state, instr, stage.copies.get(pos), results)
        return state

    def _from(self, stage: Stage, results: dict[int, State]) -> State:
        instr = stage.instr
        self._record(instr, cached=False)
        if stage.base.stage is not None:
            parent = results[stage.base.stage]
            return State(list(parent.layers), dict(parent.config))
        base = stage.base.image or "scratch"
        if base == "scratch":
            return State([], ic.empty_config())
        record = self._base_image(instr, base)
        config = self.store.config(record)
        layers = [dict(layer) for layer in record.layers]
        config = {k: v for k, v in config.items() if k != "created"}
        return State(layers, config)

    def _base_image(self, instr: Instruction, ref: str) -> ImageRecord:
        try:
            return self._image(ref)
        except NotFound as exc:
            raise instr.error(
                f"base image {ref!r} is neither local nor pullable{self._no_stage(ref)}: {exc.message}"
            ) from exc

    def _from_image(self, instr: Instruction, ref: str) -> ImageRecord:
        """COPY --from=IMAGE: any failure to get the image says that no stage has that name."""
        try:
            return self._image(ref)
        except BerthError as exc:
            raise instr.error(
                f"--from={ref}: no stage of this Containerfile has that name or index "
                f"({self._stage_list()}), and it is not an image in the local store; "
                f"pulling it failed: {exc.message}"
            ) from exc

    def _image(self, ref: str) -> ImageRecord:
        """An image by reference, pulled if it is not in the store; looked up once per build."""
        record = self.images.get(ref) or self.store.find(ref)
        if record is None:
            from berth.images.pull import pull

            record = pull(self.store, ref, self.options.registry, self.progress).record
            assert record is not None
        self.images[ref] = record
        return record

    def _stage_list(self) -> str:
        return "stages: " + ", ".join(s.label for s in self.plan.stages)

    def _no_stage(self, ref: str) -> str:
        named = [s.name for s in self.plan.stages if s.name]
        return f" (and no earlier stage is named {ref.lower()!r})" if named else ""

    def _variables(self, state: State) -> dict[str, str]:
        return {**self.args, **ic.env_map(state.config)}

    def _step(
        self, state: State, instr: Instruction, source: Source | None, results: dict[int, State]
    ) -> State:
        content = ""
        copy_tar: Path | None = None
        # ADD --checksum: the checksum names the content, so a cached step needs no download; ADD
        # of URLs the servers say (304) are unchanged: the content of the last build of the step.
        pinned = instr.keyword == "ADD" and "checksum" in instr.flags
        self._git_commits = {}
        git = self._git_source(state, instr) if instr.keyword == "ADD" else None
        if git is not None:  # the commit names the content: a cached step clones nothing
            pinned = True
        urls = self._url_sources(state, instr) if instr.keyword == "ADD" and not pinned else None
        revalidated = self._revalidated(state, instr, urls) if urls else None
        self._fetched = []
        if git is not None:
            content = self._git_content(instr, git)
        elif pinned:
            content = self._pinned_content(state, instr)
        elif revalidated is not None:
            content = revalidated
        elif instr.keyword in ("COPY", "ADD"):
            copy_tar, content = self._copy_tar(state, instr, source, results)
        elif instr.keyword == "RUN":
            used = sorted(self.args.items())
            content = sha256_bytes(canonical_json(used))
        key = sha256_bytes(canonical_json([state.key(), instr.text, content, self.epoch]))
        cached = None if self.options.no_cache else self._cached(key)
        if cached is not None:
            if copy_tar is not None:
                _remove(copy_tar.parent)
            self._record(instr, cached=True)
            return cached
        if pinned:
            copy_tar, _ = self._copy_tar(state, instr, source, results)
        elif revalidated is not None:  # unchanged, but the cached step is gone (pruned): download
            copy_tar, content = self._copy_tar(state, instr, source, results)
            key = sha256_bytes(canonical_json([state.key(), instr.text, content, self.epoch]))
        if instr.keyword in ic.METADATA:
            config = ic.apply_metadata(state.config, instr, self._variables(state))
            new = State(state.layers, ic.add_history(config, self.created, instr.text))
        elif copy_tar is not None:
            tar = copy_tar
            try:
                new = self._add_layer(state, instr, lambda tf: _append_tar(tf, tar))
            finally:
                _remove(tar.parent)
        elif instr.keyword == "RUN":
            new = self._run(state, instr)
        else:
            raise instr.error("is not supported in builds")
        self.store.cache_put(key, {"layers": new.layers, "config": new.config})
        if urls:
            self._remember_downloads(state, instr, urls, content)
        self._record(instr, cached=False)
        return new

    def _git_source(self, state: State, instr: Instruction) -> GitSource | None:
        """The repository of an ADD of a git repository (its only source), else None."""
        sources, _ = self._items(state, instr)
        try:
            found = [(s, parse_git(s)) for s in sources if isinstance(s, str)]
        except InvalidInput as exc:
            raise instr.error(exc.message) from None
        gits = [g for _, g in found if g is not None]
        if not gits:
            return None
        if len(sources) != 1 or "from" in instr.flags or "checksum" in instr.flags:
            raise instr.error("a git repository must be the only source, without --from or --checksum")
        return gits[0]

    def _git_content(self, instr: Instruction, git: GitSource) -> str:
        """The step's content hash from the repository and the commit its ref names now."""
        with _on_line(instr):
            commit = resolve_git(git, self.options.fetch_limits.timeout)
        self._git_commits[git.url] = commit
        keep = instr.flags.get("keep-git-dir", "false") == "true"
        return sha256_bytes(canonical_json(["git", redact(git.url), commit, git.subdir, keep]))

    def _url_sources(self, state: State, instr: Instruction) -> list[str] | None:
        """The URLs of an ADD whose every source is a URL (the case revalidation can vouch for)."""
        if "from" in instr.flags:
            return None
        sources, _ = self._items(state, instr)
        if not all(isinstance(s, str) and is_url(s) for s in sources):
            return None
        return [s for s in sources if isinstance(s, str)]

    def _url_key(self, state: State, instr: Instruction, urls: list[str]) -> str:
        """Where the step's last download is remembered: the step without its content, the URLs
        as expanded (ARGs) with any user info masked (no credential is written, even hashed)."""
        return sha256_bytes(
            canonical_json(["add-url", state.key(), instr.text, [redact(u) for u in urls], self.epoch])
        )

    def _remember_downloads(self, state: State, instr: Instruction, urls: list[str], content: str) -> None:
        """What revalidates the step next time: each server's ETag and Last-Modified (none: no
        record, and the next build downloads again)."""
        if len(self._fetched) != len(urls) or not all(f.validators for f in self._fetched):
            return
        seen = [
            {"url": redact(url), "etag": got.validators.etag, "last_modified": got.validators.last_modified}
            for url, got in zip(urls, self._fetched, strict=True)
        ]
        self.store.cache_put(self._url_key(state, instr, urls), {"content": content, "urls": seen})

    def _revalidated(self, state: State, instr: Instruction, urls: list[str]) -> str | None:
        """The content hash of the step's last build if every server answers 304 to a GET
        conditional on what it sent then (ETag, Last-Modified); None: download again."""
        if self.options.no_cache:
            return None
        entry = self.store.cache_get(self._url_key(state, instr, urls))
        if entry is None or len(entry.get("urls") or []) != len(urls):
            return None
        for url, seen in zip(urls, entry["urls"], strict=True):
            validators = Validators(seen.get("etag"), seen.get("last_modified"))
            if not unchanged(url, self.options.fetch_limits, validators):
                return None
        return str(entry["content"])

    def _cached(self, key: str) -> State | None:
        entry = self.store.cache_get(key)
        if entry is None:
            return None
        for layer in entry["layers"]:
            if (
                not self.store.has_blob(layer["digest"], layer["size"])
                or self.store.layer_record(layer["chain_id"]) is None
            ):
                return None
        return State(entry["layers"], entry["config"])

    def _add_layer(self, state: State, instr: Instruction, write: Callable[[tarfile.TarFile], None]) -> State:
        desc = pack_layer(self.store, write)
        diff_ids = [*(x["diff_id"] for x in state.layers), desc["diff_id"]]
        chain = chain_ids(diff_ids)[-1]
        parent = state.layers[-1]["chain_id"] if state.layers else None
        self.store.unpack_layer(desc["digest"], desc["diff_id"], chain, parent)
        layer = {**desc, "chain_id": chain}
        config = ic.add_layer(state.config, desc["diff_id"], self.created, _shown(instr))
        return State([*state.layers, layer], config)

    # -- RUN -------------------------------------------------------------------------------------
    def _run(self, state: State, instr: Instruction) -> State:
        c = state.config.get("config", {})
        upper = self.store.scratch_dir("run-")
        (upper / "diff").mkdir()
        command, mounts = self._run_command(state, instr, upper)
        env = {**self.args, **ic.env_map(state.config)}
        self.run_step(
            [self.store.layer_dir(x["chain_id"]) for x in state.layers],
            upper / "diff",
            command,
            env,
            c.get("WorkingDir") or "/",
            c.get("User") or "root",
            instr.flags.get("network") == "host",
            mounts,
        )
        try:
            return self._add_layer(state, instr, lambda tf: dir_to_tar(upper / "diff", tf, self.epoch))
        finally:
            _remove(upper)

    def _run_command(
        self, state: State, instr: Instruction, work: Path
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """The step's argv and read-only binds (host dir, container path), as BuildKit runs heredocs.

        `RUN <<EOF` alone: the heredoc is the shell script, or, if it starts with `#!`, a file
        (bound at /dev/pipes/NAME) run as the program. Any other line with heredocs goes to the
        shell whole, bodies and terminators included, so the shell reads them (quoting, `<<-`).
        """
        if instr.json_args is not None:
            return list(instr.json_args), []
        shell = ic.shell_of(state.config)
        if not instr.heredocs:
            return [*shell, instr.args], []
        marker = parse_marker(instr.args.strip())
        if len(instr.heredocs) == 1 and marker is not None and marker[0] is not None:
            doc = instr.heredocs[0]
            if not doc.data.startswith("#!"):
                return [*shell, doc.data], []
            if "/" in doc.name or doc.name in (".", ".."):
                raise instr.error(f"heredoc name {doc.name!r} cannot name a script file")
            pipes = work / "pipes"
            pipes.mkdir(mode=0o755)
            os.chmod(pipes, 0o755)
            script = pipes / doc.name
            script.write_text(doc.data, encoding="utf-8")
            os.chmod(script, 0o755)
            return [f"/dev/pipes/{doc.name}"], [(str(pipes), "/dev/pipes")]
        full = instr.args + "".join(f"\n{h.content}{h.name}" for h in instr.heredocs)
        return [*shell, full], []

    # -- COPY / ADD ------------------------------------------------------------------------------
    def _items(self, state: State, instr: Instruction) -> tuple[list[str | Heredoc], str]:
        """The sources (paths, URLs, heredocs) and the destination of a COPY or ADD, expanded."""
        variables = self._variables(state)
        items = (
            list(instr.json_args)
            if instr.json_args is not None
            else words(instr, expand(instr.args, variables))
        )
        if instr.json_args is not None:
            items = [expand(x, variables) for x in items]
        if len(items) < 2:
            raise instr.error("needs at least one source and a destination")
        *raw, dest = items
        docs = list(instr.heredocs)
        sources: list[str | Heredoc] = []
        for src in raw:
            # A heredoc's word, as word splitting left it: `<<"a.txt"` is `<<a.txt` by now.
            if docs and src == f"<<{'-' if docs[0].chomp else ''}{docs[0].name}":
                sources.append(docs.pop(0))
            else:
                sources.append(src)
        if docs:
            raise instr.error(f"heredoc <<{docs[0].name} is not a source (the last word is the destination)")
        return sources, dest

    def _pinned_content(self, state: State, instr: Instruction) -> str:
        """ADD --checksum: the step's content hash from the URL and checksum alone (no download)."""
        sources, dest = self._items(state, instr)
        if len(sources) != 1 or not isinstance(sources[0], str) or not is_url(sources[0]):
            raise instr.error("--checksum needs exactly one source, an http:// or https:// URL")
        try:
            algo, hexdigest = parse_checksum(instr.flags["checksum"])
        except InvalidInput as exc:
            raise instr.error(exc.message) from None
        return sha256_bytes(canonical_json(["url", sources[0], f"{algo}:{hexdigest}", dest]))

    def _copy_tar(
        self, state: State, instr: Instruction, source: Source | None, results: dict[int, State]
    ) -> tuple[Path, str]:
        """Write the step's layer tar to scratch; its sha256 is the step's content hash.

        With --from, the hash also covers the identity of what is copied from (the stage's top
        layer, the image's digest), so a changed stage always invalidates the copy. The tar lives
        in a scratch directory of its own (with any download): the caller removes it.
        """
        work = self.store.scratch_dir("copy-")
        try:
            return self._write_copy_tar(state, instr, source, results, work)
        except BaseException:
            _remove(work)
            raise

    def _write_copy_tar(
        self, state: State, instr: Instruction, source: Source | None, results: dict[int, State], work: Path
    ) -> tuple[Path, str]:
        tree: StageTree | None = None
        identity = what = ""
        if source is not None:
            tree, identity, what = self._source_tree(instr, source, results)
        sources, dest = self._items(state, instr)
        workdir = state.config.get("config", {}).get("WorkingDir") or "/"
        dest_abs = posixpath.normpath(posixpath.join(workdir, dest))
        owner = self._owner(state, instr) if tree is None or "chown" in instr.flags else None
        mode = None
        if "chmod" in instr.flags:
            if not re.fullmatch(r"[0-7]{3,4}", instr.flags["chmod"]):
                raise instr.error(f"invalid --chmod {instr.flags['chmod']!r}")
            mode = int(instr.flags["chmod"], 8)
        variables = self._variables(state)
        # (source, its name, whether it is a directory): a context path, a path in the stage, or a
        # file the build writes itself (a heredoc, a download).
        matches: list[tuple[Path | str | _Inline, str, bool]] = []
        for n, src in enumerate(sources):
            if isinstance(src, Heredoc):
                if tree is not None:
                    raise instr.error("a heredoc cannot be a source together with --from")
                data = expand(src.data, variables) if src.expand else src.data
                path = work / f"heredoc-{n}"
                path.write_bytes(data.encode("utf-8"))
                mtime = self.epoch if self.epoch is not None else 0
                matches.append((_Inline(path, 0o644, mtime), src.name, False))
                continue
            git = parse_git(src) if instr.keyword == "ADD" and tree is None else None
            if git is not None:
                keep = instr.flags.get("keep-git-dir", "false") == "true"
                limits = self.options.fetch_limits
                with _on_line(instr):
                    commit = self._git_commits.get(git.url) or resolve_git(git, limits.timeout)
                    checked_out = checkout_git(git, commit, work / "git", limits.deadline, keep)
                matches.append((checked_out, checked_out.name, True))
                continue
            if is_url(src):
                if instr.keyword != "ADD" or tree is not None:
                    raise instr.error(
                        f"cannot copy from the URL {redact(src)}: only ADD (without --from) fetches URLs"
                    )
                if not re.match(r"^https?://", src, re.IGNORECASE):
                    raise Unsupported(
                        f"{instr.source}:{instr.line}: ADD: {redact(src)}: only http:// and https:// URLs "
                        "are supported",
                        line=instr.line,
                    )
                got = self._fetch(instr, src, work / f"url-{n}")
                self._fetched.append(got)
                mtime = self.epoch if self.epoch is not None else (got.mtime or 0)
                matches.append((_Inline(got.path, 0o600, mtime), file_name(src), False))
                continue
            if tree is not None:
                found_in = tree.match(src)
                if not found_in:
                    raise instr.error(f"source {src!r} not found in {what}")
                for path_in in found_in:
                    st = tree.lstat_path(path_in)
                    is_dir = path_in == "/" or (st is not None and stat.S_ISDIR(st.st_mode))
                    matches.append((path_in, posixpath.basename(path_in), is_dir))
                continue
            found = self._match(instr, src)
            if not found:
                raise instr.error(
                    f"source {src!r} not found in the build context (or excluded by the ignore file)"
                )
            matches += [(p, p.name, stat.S_ISDIR(os.lstat(p).st_mode)) for p in found]
        dest_is_dir = dest.endswith("/") or len(matches) > 1 or dest_abs == "/"
        view = LayerView([self.store.layer_dir(x["chain_id"]) for x in state.layers])
        real_dest = view.resolve(dest_abs)
        out = work / "layer.tar"
        h = hashlib.sha256()

        class _Hashing:
            def __init__(self, fh: Any) -> None:
                self.fh = fh

            def write(self, data: bytes) -> int:
                h.update(data)
                return int(self.fh.write(data))

        existing = view.lstat(real_dest)
        dest_exists_as_dir = existing is not None and stat.S_ISDIR(existing.st_mode)
        entries: list[tuple[str, Path | str | _Inline, bool]] = []
        for match, name, is_dir in matches:
            # A local archive ADD unpacks is a directory's content: it goes into the destination.
            if is_dir or (instr.keyword == "ADD" and isinstance(match, Path) and _is_archive(match)):
                entries.append((real_dest, match, True))
            elif dest_is_dir or dest_exists_as_dir:
                if isinstance(match, _Inline) and (not name or "/" in name or name in (".", "..")):
                    why = f"a file cannot be named {name!r}" if name else "the URL has no file name"
                    raise instr.error(f"cannot put the file in the directory {dest}: {why}; give a file path")
                entries.append((posixpath.join(real_dest, name), match, False))
            else:
                entries.append((real_dest, match, False))
        with open(out, "wb") as fh, tar_writer(_Hashing(fh)) as tf:
            written: set[str] = set()
            for target, _, is_dir in entries:
                self._parents(tf, view, target if is_dir else posixpath.dirname(target), written)
            links: dict[tuple[int, int], str] = {}
            for target, item, _ in entries:
                if isinstance(item, _Inline):
                    _add_inline(tf, item, target, owner or (0, 0), mode, written)
                elif isinstance(item, str):
                    assert tree is not None
                    tree.add_tree(tf, item, target, owner, mode, self.epoch, written, links)
                elif instr.keyword == "ADD" and _is_archive(item):
                    self._add_archive(tf, item, target, written)
                else:
                    uid, gid = owner or (0, 0)
                    self._add_tree(tf, item, target, uid, gid, mode, written, top=True)
        content = "sha256:" + h.hexdigest()
        if identity:
            content = sha256_bytes(canonical_json([identity, content]))
        return out, content

    def _fetch(self, instr: Instruction, url: str, dest: Path) -> Fetched:
        """Download for ADD; every failure names the Containerfile line."""
        with _on_line(instr):
            return fetch(url, dest, self.options.fetch_limits, instr.flags.get("checksum"))

    def _source_tree(
        self, instr: Instruction, source: Source, results: dict[int, State]
    ) -> tuple[StageTree, str, str]:
        """The root filesystem COPY --from reads, its identity for the cache key, and its name."""
        if source.stage is not None:
            layers = results[source.stage].layers
            identity = f"stage:{layers[-1]['chain_id'] if layers else 'empty'}"
            what = f"stage {self.plan.stages[source.stage].label}"
        else:
            assert source.image is not None
            record = self._from_image(instr, source.image)
            layers, identity = record.layers, f"image:{record.digest}"
            what = f"image {source.image!r}"
        return StageTree([self.store.layer_dir(x["chain_id"]) for x in layers]), identity, what

    def _owner(self, state: State, instr: Instruction) -> tuple[int, int]:
        spec = instr.flags.get("chown")
        if not spec:
            return 0, 0
        user, _, group = spec.partition(":")
        view = LayerView([self.store.layer_dir(x["chain_id"]) for x in state.layers])
        uid = _lookup(view, "/etc/passwd", user, instr)
        if group:
            gid = _lookup(view, "/etc/group", group, instr)
        elif user.isdigit():
            gid = uid
        else:
            gid = _primary_gid(view, user)
        return uid, gid

    def _match(self, instr: Instruction, src: str) -> list[Path]:
        rel = posixpath.normpath(src.lstrip("/"))
        if rel == ".." or rel.startswith("../"):
            raise instr.error(f"source {src!r} is outside the build context")
        if any(c in rel for c in "*?["):
            found = []
            for root, dirs, files in os.walk(self.context):
                dirs.sort()
                for name in sorted(dirs + files):
                    path = Path(root) / name
                    r = path.relative_to(self.context).as_posix()
                    if fnmatch.fnmatchcase(r, rel) and not self.ignore.excluded(r):
                        found.append(path)
            return found
        path = self.context / rel if rel != "." else self.context
        if not os.path.lexists(path):
            return []
        real = Path(os.path.realpath(path))
        if real != self.context and self.context not in real.parents:
            raise instr.error(f"source {src!r} resolves outside the build context")
        if rel != "." and self.ignore.excluded(rel):
            return []
        return [real]

    def _parents(self, tf: tarfile.TarFile, view: LayerView, path: str, written: set[str]) -> None:
        """Directory entries for the destination's parents, with the image's own metadata."""
        parts = [p for p in path.split("/") if p]
        for i in range(len(parts)):
            arc = "/".join(parts[: i + 1])
            if arc in written:
                continue
            written.add(arc)
            st = view.lstat("/" + arc)
            info = tarfile.TarInfo(arc)
            info.type = tarfile.DIRTYPE
            info.uname = info.gname = ""
            if st is not None and stat.S_ISDIR(st.st_mode):
                info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
                info.mtime = int(st.st_mtime) if self.epoch is None else self.epoch
            else:
                info.mode, info.uid, info.gid = 0o755, 0, 0
                info.mtime = self.epoch if self.epoch is not None else 0
            tf.addfile(info)

    def _add_tree(
        self,
        tf: tarfile.TarFile,
        src: Path,
        target: str,
        uid: int,
        gid: int,
        mode: int | None,
        written: set[str],
        top: bool,
    ) -> None:
        st = os.lstat(src)
        arc = target.lstrip("/")
        is_dir = stat.S_ISDIR(st.st_mode)
        # The ignore file filters the context; a tree from elsewhere (a git checkout) is whole.
        in_context = src.is_relative_to(self.context)
        rel = src.relative_to(self.context).as_posix() if in_context and src != self.context else "."
        if not top and in_context and self.ignore.excluded(rel):
            return
        if arc and not (top and is_dir):
            info = info_for(src, arc, st, self.epoch)
            info.uid, info.gid = uid, gid
            if mode is not None:
                info.mode = mode
            if not add_entry(tf, src, info, st):
                return  # sockets, fifos, devices in a context are not copied
            written.add(arc)
        if is_dir:
            for name in sorted(os.listdir(src)):
                child = src / name
                self._add_tree(tf, child, posixpath.join(target, name), uid, gid, mode, written, top=False)

    def _add_archive(self, tf: tarfile.TarFile, src: Path, target: str, written: set[str]) -> None:
        """ADD of a local tar: unpacked (safely, under a dir handle), then added under `target`."""
        work = self.store.scratch_dir("add-")
        try:
            policy = ExtractPolicy(whiteouts=False, devices="skip")
            with open(src, "rb") as fh:
                extract_layer(fh, work, policy)
            prefix = target.lstrip("/")
            dir_to_tar(work, tf, self.epoch, prefix=f"{prefix}/" if prefix else "")
        finally:
            _remove(work)


@dataclass(frozen=True)
class _Inline:
    """A file the build writes itself (a heredoc, a download): its default mode and its mtime."""

    path: Path
    mode: int
    mtime: int


def _add_inline(
    tf: tarfile.TarFile,
    item: _Inline,
    target: str,
    owner: tuple[int, int],
    mode: int | None,
    written: set[str],
) -> None:
    arc = target.lstrip("/")
    info = tarfile.TarInfo(arc)
    info.size = item.path.stat().st_size
    info.mode = item.mode if mode is None else mode
    info.uid, info.gid = owner
    info.uname = info.gname = ""
    info.mtime = item.mtime
    with open(item.path, "rb") as fh:
        tf.addfile(info, fh)
    written.add(arc)


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")


@contextlib.contextmanager
def _on_line(instr: Instruction) -> Iterator[None]:
    """A failure of what the instruction does (a download, a clone) names its Containerfile line."""
    try:
        yield
    except BerthError as exc:
        where = f"{instr.source}:{instr.line}: {instr.keyword}"
        raise type(exc)(f"{where}: {exc.message}", **exc.details) from None


def _shown(instr: Instruction) -> str:
    """The instruction as history and step output show it: URLs without their credentials."""
    return _USERINFO.sub(r"\1***@", instr.text)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _append_tar(tf: tarfile.TarFile, path: Path) -> None:
    with tarfile.open(path, "r:", encoding="utf-8", errors="surrogateescape") as src:
        for member in src:
            tf.addfile(member, src.extractfile(member) if member.isreg() else None)


def _is_archive(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd")):
        return True
    return len(head) == 512 and head[257:262] == b"ustar"


def _lookup(view: LayerView, db: str, name: str, instr: Instruction) -> int:
    if name.isdigit():
        return int(name)
    text = view.read_text(db) or ""
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    raise instr.error(f"no {'user' if 'passwd' in db else 'group'} {name!r} in the image's {db}")


def _primary_gid(view: LayerView, user: str) -> int:
    for line in (view.read_text("/etc/passwd") or "").splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == user and fields[3].isdigit():
            return int(fields[3])
    return 0
