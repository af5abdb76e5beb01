"""Content digests: the one strict parser, and hashing helpers.

Only `sha256:` followed by 64 lowercase hex digits is accepted: the OCI spec allows other
algorithms, but a registry or archive that uses one is refused rather than half-trusted, and
uppercase hex is refused because two spellings of one digest would defeat deduplication.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from berth.errors import InvalidInput

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ANY_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


def parse_digest(value: object, what: str = "digest") -> str:
    """Return `value` if it is a well-formed sha256 digest; raise InvalidInput otherwise."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} is not a string: {value!r}")
    if _DIGEST.fullmatch(value):
        return value
    if _ANY_DIGEST.fullmatch(value) and not value.startswith("sha256:"):
        algorithm = value.partition(":")[0]
        known = "registered by the OCI spec" if algorithm == "sha512" else "unknown to the OCI spec"
        raise InvalidInput(
            f"{what} {value!r} uses an unsupported algorithm {algorithm!r} ({known}; Berth takes sha256 only)"
        )
    raise InvalidInput(f"{what} {value!r} is not a valid sha256 digest (sha256: and 64 lowercase hex)")


def is_digest(value: str) -> bool:
    return bool(_DIGEST.fullmatch(value))


def hex_of(digest: str) -> str:
    return parse_digest(digest)[7:]


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """OCI chain IDs: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        parse_digest(diff_id, "diff ID")
        out.append(diff_id if not out else sha256_bytes(f"{out[-1]} {diff_id}".encode()))
    return out
