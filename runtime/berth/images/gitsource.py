"""`ADD` of a git repository, in BuildKit's syntax: `ADD URL[#REF[:SUBDIR]] DEST`.

URL is a repository over https, http, git or ssh (`https://host/repo.git`, `git@host:repo.git`,
`git://host/repo`); REF a branch, a tag or a commit (default: the remote's HEAD); SUBDIR the
directory of the repository to add (default: all of it). The ref is resolved to a commit with
`git ls-remote` first, so the build cache is keyed by the commit and a cached step clones
nothing; otherwise the commit alone is fetched (depth 1) into store scratch by the host's git,
with no configuration but ours (no system or user config, no credential prompts, no `ext::` or
`file://` transports), and the tree is added without its `.git` (`--keep-git-dir` keeps it),
every file's mtime set to the commit's time, so the same commit always makes the same layer.
Submodules are not fetched. Credentials in the URL reach git only; messages mask them.

There is no library for git's protocols in Debian worth its weight next to git itself, which
every build host can install; hence a subprocess.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from berth.errors import BerthError, InvalidInput, NotFound
from berth.images.fetch import FetchFailed, redact

_SCHEMES = re.compile(r"^(?:https?|git|ssh)://", re.IGNORECASE)
_SCP = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!//)")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_REF = re.compile(r"^[A-Za-z0-9._/-]*$")
ALLOWED_PROTOCOLS = "https:http:git:ssh"


@dataclass(frozen=True)
class GitSource:
    url: str  # the repository, without the fragment
    ref: str  # "" for the remote's HEAD
    subdir: str  # "" for the whole tree

    @property
    def shown(self) -> str:
        fragment = self.ref + (f":{self.subdir}" if self.subdir else "")
        return redact(self.url) + (f"#{fragment}" if fragment else "")


def parse_git(src: str) -> GitSource | None:
    """A git source if `src` names a repository (BuildKit's rule: a `.git` URL, `git@host:...`
    or `git://`), else None (then an http(s) URL is a file to fetch)."""
    base, _, fragment = src.partition("#")
    path = base.split("?", 1)[0].rstrip("/")
    by_scheme = _SCHEMES.match(base) and (path.endswith(".git") or base.lower().startswith("git://"))
    if not (_SCP.match(base) or by_scheme):
        return None
    ref, _, subdir = fragment.partition(":")
    if not _REF.fullmatch(ref) or ref.startswith("-") or ".." in ref:
        raise InvalidInput(f"{redact(base)}: {ref!r} is not a branch, tag or commit name")
    subdir = subdir.strip("/")
    if subdir and any(part in ("", ".", "..") for part in subdir.split("/")):
        raise InvalidInput(f"{redact(base)}: subdirectory {subdir!r} is not a plain relative path")
    return GitSource(base, ref, subdir)


def _git(args: list[str], timeout: float, cwd: Path | None = None) -> str:
    """Run git with no configuration but ours; its output, or FetchFailed with what it said."""
    git = shutil.which("git")
    if git is None:
        raise NotFound("ADD of a git repository needs git on this host (apt install git)")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS,
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
        "LC_ALL": "C",
    }
    argv = [git, "-c", "protocol.file.allow=never", "-c", "advice.detachedHead=false", *args]
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FetchFailed(f"git {args[0]} took longer than {timeout:g} s") from None
    if proc.returncode != 0:
        said = " ".join(proc.stderr.split())[-500:]
        for secret in re.findall(r"://([^/@\s]+)@", " ".join(args)):
            said = said.replace(secret, "***")
        raise FetchFailed(f"git {args[0]} failed: {said or f'exit status {proc.returncode}'}")
    return proc.stdout


def resolve(source: GitSource, timeout: float) -> str:
    """The commit `source.ref` names on the remote (a commit name is taken as it is)."""
    if _COMMIT.fullmatch(source.ref):
        return source.ref
    ref = source.ref or "HEAD"
    try:
        listing = _git(["ls-remote", "--", source.url, ref], timeout)
    except FetchFailed as exc:
        raise FetchFailed(f"{source.shown}: {exc.message}") from None
    found: dict[str, str] = {}
    for line in listing.splitlines():
        commit, _, name = line.partition("\t")
        found[name] = commit
    for name in (f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}", ref):
        if name in found:
            return found[name]
    raise NotFound(f"{source.shown}: the repository has no branch or tag {ref!r}")


def checkout(source: GitSource, commit: str, dest: Path, timeout: float, keep_git_dir: bool) -> Path:
    """Fetch `commit` into the new directory `dest`; the tree to add (SUBDIR, checked to stay in
    the checkout), every mtime set to the commit's time."""
    dest.mkdir(mode=0o755)
    _git(["init", "-q", str(dest)], timeout)
    wanted = source.ref if source.ref and not _COMMIT.fullmatch(source.ref) else commit
    try:
        _git(["fetch", "-q", "--depth", "1", "--no-tags", "--", source.url, wanted], timeout, dest)
    except FetchFailed:
        if wanted != commit:
            raise
        _git(["fetch", "-q", "--no-tags", "--", source.url], timeout, dest)  # no fetch by commit here
    _git(["checkout", "-q", commit if wanted == commit else "FETCH_HEAD"], timeout, dest)
    got = _git(["rev-parse", "HEAD"], timeout, dest).strip()
    if got != commit:
        raise FetchFailed(
            f"{source.shown} moved while it was fetched ({commit[:12]} -> {got[:12]}): build again"
        )
    when = int(_git(["log", "-1", "--format=%ct"], timeout, dest).strip())
    if not keep_git_dir:
        shutil.rmtree(dest / ".git")
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (when, when), follow_symlinks=False)
    os.utime(dest, (when, when))
    tree = dest / source.subdir if source.subdir else dest
    real = Path(os.path.realpath(tree))
    if real != dest.resolve() and dest.resolve() not in real.parents:
        raise BerthError(f"{source.shown}: the subdirectory leads out of the repository")
    if not real.is_dir():
        raise NotFound(f"{source.shown}: no directory {source.subdir!r} in commit {commit[:12]}")
    return real
