"""`ADD URL`: the builder itself downloads the file (never the step container), into store scratch.

Bounded: `FetchLimits.timeout` bounds every wait (connect, the answer, the next bytes) and
`deadline` the whole download; a body larger than `max_bytes` is refused (before it is read when
its Content-Length says so). Redirects are followed at most MAX_REDIRECTS times. The file's mtime
is the Last-Modified the server sends (as BuildKit does). With a checksum (`--checksum=sha256:...`,
sha384 and sha512 too) the content is verified before the caller sees it; a mismatch removes the
download. Credentials written in the URL (`https://user:pass@host/`) are sent as Basic auth and
never appear in a message: every message names the URL with its user info masked.

`unchanged` revalidates a download the build cache remembers, as BuildKit does: a conditional
GET with the server's ETag and Last-Modified of that download; 304 Not Modified means the cached
step holds, and no body is read either way.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth.errors import BerthError, IntegrityError, InvalidInput, Timeout

MAX_REDIRECTS = 5
_CHUNK = 1 << 20
_CHECKSUM = re.compile(r"(sha256|sha384|sha512):([0-9a-f]+)")
_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class FetchFailed(BerthError):
    """A URL could not be downloaded: the server refused, the connection broke, or it was too big."""

    kind = "fetch-failed"
    exit_code = 13


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 1 << 30
    timeout: float = 30.0
    deadline: float = 600.0


@dataclass(frozen=True)
class Validators:
    """What the server said identifies the version it sent: its ETag and Last-Modified headers."""

    etag: str | None = None
    last_modified: str | None = None

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)


@dataclass(frozen=True)
class Fetched:
    path: Path
    digest: str | None  # ALGO:HEX of the content, when a checksum was asked for (and matched)
    size: int
    mtime: int | None  # from Last-Modified, if the server sent one
    validators: Validators = Validators()


def is_url(src: str) -> bool:
    return bool(URL_SCHEME.match(src))


def redact(url: str) -> str:
    """The URL with any user info masked: what messages may show."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


def parse_checksum(value: str) -> tuple[str, str]:
    """`ALGO:HEX` -> (algo, hex), refusing anything else by name."""
    m = _CHECKSUM.fullmatch(value)
    if m is None or len(m.group(2)) != _HEX_LEN[m.group(1)]:
        raise InvalidInput(
            f"invalid --checksum {value!r}: expected sha256:<64 hex digits> (or sha384:, sha512:)"
        )
    return m.group(1), m.group(2)


def file_name(url: str) -> str:
    """The last component of the URL's path: the file's name when the destination is a directory."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    name = path.rpartition("/")[2]
    return "" if name in ("", ".", "..") else name


class _Redirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if (
            new is not None
            and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc
        ):
            new.remove_header("Authorization")  # credentials go to the host they were written for
        return new


def _request(url: str, extra: dict[str, str] | None = None) -> urllib.request.Request:
    """The GET of `url`, credentials written in it moved to an Authorization header."""
    shown = redact(url)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"cannot fetch {shown}: only http:// and https:// URLs with a host are supported")
    headers = {"User-Agent": "berth-build", "Accept-Encoding": "identity", **(extra or {})}
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    return urllib.request.Request(urllib.parse.urlunsplit(parts), headers=headers)


def unchanged(url: str, limits: FetchLimits, validators: Validators) -> bool:
    """Whether the server answers 304 Not Modified to a GET conditional on `validators`.

    Anything else (200, an error, no answer in time) is False: the caller downloads again, and a
    real failure is reported by that download. A 200's body is not read.
    """
    if not validators:
        return False
    extra = {}
    if validators.etag:
        extra["If-None-Match"] = validators.etag
    if validators.last_modified:
        extra["If-Modified-Since"] = validators.last_modified
    opener = urllib.request.build_opener(_Redirects())
    try:
        response = opener.open(_request(url, extra), timeout=limits.timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code == 304
    except (urllib.error.URLError, OSError, ValueError):
        return False
    response.close()  # 200: changed (or the server ignores validators)
    return False


def fetch(url: str, dest: Path, limits: FetchLimits, checksum: str | None = None) -> Fetched:
    """Download `url` (http or https) to `dest`; verify `checksum` if given. `dest` exists only on success."""
    shown = redact(url)
    request = _request(url)
    expected = parse_checksum(checksum) if checksum else None
    opener = urllib.request.build_opener(_Redirects())
    start = time.monotonic()
    try:
        response = opener.open(request, timeout=limits.timeout)
    except urllib.error.HTTPError as exc:
        raise FetchFailed(f"fetching {shown} failed: HTTP {exc.code} {exc.reason}", status=exc.code) from None
    except TimeoutError:
        raise Timeout(f"fetching {shown}: no answer within {limits.timeout:g} s") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise Timeout(f"fetching {shown}: no answer within {limits.timeout:g} s") from None
        raise FetchFailed(f"fetching {shown} failed: {reason}") from None
    try:
        with response:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > limits.max_bytes:
                raise FetchFailed(
                    f"{shown} is {int(length)} bytes, more than the limit of {limits.max_bytes} bytes"
                )
            size, got = _download(response, dest, limits, start, shown, expected[0] if expected else None)
            mtime = _last_modified(response.headers.get("Last-Modified"))
            validators = Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    if expected is not None and got != expected[1]:
        dest.unlink(missing_ok=True)
        raise IntegrityError(
            f"{shown} has checksum {expected[0]}:{got}, but --checksum says {expected[0]}:{expected[1]}",
            url=shown,
        )
    return Fetched(dest, f"{expected[0]}:{got}" if expected else None, size, mtime, validators)


def _download(
    response: Any, dest: Path, limits: FetchLimits, start: float, shown: str, algo: str | None
) -> tuple[int, str | None]:
    """Stream the body to `dest`: (size, hex digest in `algo` if given).

    Hashing only for a checksum: the layer tar is hashed anyway (it is the cache's content hash),
    and sha256 costs more than the download itself on loopback.
    """
    h = hashlib.new(algo) if algo else None
    total = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        while True:
            if time.monotonic() - start > limits.deadline:
                raise Timeout(f"fetching {shown} took longer than {limits.deadline:g} s")
            try:
                chunk = response.read(_CHUNK)
            except TimeoutError:
                raise Timeout(f"fetching {shown}: no data for {limits.timeout:g} s") from None
            except OSError as exc:
                raise FetchFailed(f"fetching {shown} failed: {exc}") from None
            if not chunk:
                break
            total += len(chunk)
            if total > limits.max_bytes:
                raise FetchFailed(f"{shown} is larger than the limit of {limits.max_bytes} bytes")
            if h is not None:
                h.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) != total:
        raise FetchFailed(f"fetching {shown}: the connection ended after {total} of {length} bytes")
    return total, h.hexdigest() if h is not None else None


def _last_modified(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError):
        return None
