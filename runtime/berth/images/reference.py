"""Image references: `[registry/]repository[:tag][@digest]`, validated and normalised.

Names without a registry are local (`localhost/NAME`, as podman does); when they must be pulled
they mean Docker Hub (`docker.io/library/NAME`). A tag defaults to `latest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from berth.errors import InvalidInput
from berth.images.digest import parse_digest

LOCAL_REGISTRY = "localhost"
DEFAULT_REGISTRY = "docker.io"
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9-]+)*(?::[0-9]{1,5})?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def tagged(self) -> str:
        """`registry/repo:tag` (tag defaults to latest): the key of the tag table."""
        return f"{self.name}:{self.tag or 'latest'}"

    def with_registry(self, registry: str) -> Reference:
        repo = self.repository
        if registry == DEFAULT_REGISTRY and "/" not in repo:
            repo = f"library/{repo}"
        return Reference(registry, repo, self.tag, self.digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_reference(text: str) -> Reference:
    """Parse and validate; a name without registry gets `localhost` (see the module docstring)."""
    return _parse(text)[0]


def has_registry(text: str) -> bool:
    return _parse(text)[1]


def _parse(text: str) -> tuple[Reference, bool]:
    if not text or len(text) > 512 or text != text.strip():
        raise InvalidInput(f"invalid image reference {text!r}")
    rest, digest = text, None
    if "@" in rest:
        rest, raw_digest = rest.split("@", 1)
        digest = parse_digest(raw_digest, f"digest of {text!r}")
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise InvalidInput(f"invalid tag {tag!r} in {text!r}")
    parts = rest.split("/")
    explicit = len(parts) > 1 and (
        "." in parts[0] or ":" in parts[0] or parts[0] == "localhost" or parts[0] != parts[0].lower()
    )
    if explicit:
        registry, repo_parts = parts[0], parts[1:]
        if not _DOMAIN.fullmatch(registry):
            raise InvalidInput(f"invalid registry {registry!r} in {text!r}")
    else:
        registry, repo_parts = LOCAL_REGISTRY, parts
    if not repo_parts or not all(_COMPONENT.fullmatch(p) for p in repo_parts):
        raise InvalidInput(
            f"invalid image reference {text!r}: repository names are lowercase letters, digits and . _ -"
        )
    return Reference(registry, "/".join(repo_parts), tag, digest), explicit


def pull_reference(text: str) -> Reference:
    """The reference a pull fetches: a name without registry means Docker Hub."""
    ref, explicit = _parse(text)
    return ref if explicit else ref.with_registry(DEFAULT_REGISTRY)
