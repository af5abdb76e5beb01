"""A client of the OCI distribution API over http.client: manifests and blobs, up and down.

Auth is negotiated from the registry's 401 challenge (anonymous first; Basic; Bearer tokens from the
realm it names, one token per scope, reused until the registry refuses it). Transient failures
(connection cut, stall, 429, 5xx) are retried with exponential backoff. `timeout` bounds each wait
for the registry (connect, an answer, the next bytes of a body) and also the whole download of a
small document (manifest, token), so a registry that stalls or drips fails in bounded time; a
blob, which may be large, must instead keep up `min_rate` over each `timeout` seconds.
Redirects are followed at most MAX_REDIRECTS times and never in a loop, dropping credentials when
they lead to another host. A response whose Content-Length is larger than what it may be (the
manifest cap, a blob's descriptor size) is refused before its body is read. Credentials and tokens
live only in memory: `Credentials.__repr__` masks them and no message built here includes them.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from berth.errors import BerthError, IntegrityError, InvalidInput, NotFound, PermissionDenied, RegistryError
from berth.images import mediatypes as mt
from berth.images.digest import parse_digest, sha256_bytes

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_REDIRECTS = 5
_CHUNK = 1 << 20
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=***)"

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach a registry: `insecure` means plain http (meant for loopback registries)."""

    insecure: bool = False
    ca_file: str | None = None
    credentials: Credentials | None = None
    retries: int = 4
    backoff: float = 0.2
    timeout: float = 30.0
    min_rate: int = 1024  # bytes/s over each `timeout` seconds of a blob download; 0: no floor
    chunk_size: int = 0  # 0: monolithic uploads; >0: chunked PATCH uploads of this size


def checked_timeout(option: str, value: Any) -> float:
    """A registry timeout as given by a user (`option` names where): seconds, more than 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
        raise InvalidInput(f"{option} must be a number of seconds above 0 (at most a day), not {value!r}")
    return float(value)


def checked_min_rate(option: str, value: Any) -> int:
    """A blob download's floor as given by a user: bytes per second, 0 for none."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{option} must be a whole number of bytes per second, 0 or more, not {value!r}")
    return value


class _Response:
    """A response whose body the caller must read or close before the next request."""

    def __init__(self, resp: http.client.HTTPResponse, url: str) -> None:
        self.raw = resp
        self.status = resp.status
        self.url = url
        self.body = b""  # the whole body, once read by `RegistryClient._document`

    def header(self, name: str) -> str | None:
        return self.raw.getheader(name)

    def length(self) -> int | None:
        value = (self.header("Content-Length") or "").strip()
        return int(value) if value.isdigit() else None

    def read(self, limit: int | None = None, deadline: float | None = None, what: str = "response") -> bytes:
        """The whole body; with `limit`, refuse a bigger one; with `deadline`, refuse a slow one."""
        if limit is None and deadline is None:
            return self.raw.read()
        length = self.length()
        if limit is not None and length is not None and length > limit:
            self.raw.close()
            raise InvalidInput(
                f"{what} from {_safe(self.url)} is {length} bytes: larger than the {_size(limit)} cap"
            )
        parts: list[bytes] = []
        total = 0
        while chunk := self.raw.read1(_CHUNK):
            total += len(chunk)
            if limit is not None and total > limit:
                self.raw.close()
                raise InvalidInput(f"{what} from {_safe(self.url)} is larger than the {_size(limit)} cap")
            if deadline is not None and time.monotonic() > deadline:
                self.raw.close()
                raise _Drip(f"{what} still incomplete after {total} bytes: the registry drips it too slowly")
            parts.append(chunk)
        self.raw.read()  # at the end: marks the response done, so the connection can serve the next
        if length is not None and total < length:
            raise http.client.IncompleteRead(b"", length - total)  # cut short: retried like any cut
        return b"".join(parts)

    def chunks(self, min_rate: int = 0, window: float = 30.0) -> Iterator[bytes]:
        """The body in pieces; a connection cut before Content-Length bytes is an IncompleteRead
        (http.client would just end the body early), so it is retried like any cut.

        The socket timeout catches a registry that sends nothing; `min_rate` (bytes/s, averaged
        over each `window` seconds, as curl's --speed-limit/--speed-time) catches one that keeps
        sending a byte now and then, which would hold a large blob's download open for days.
        """
        expected, total = self.length(), 0
        window_start, window_bytes = time.monotonic(), 0
        pending: list[bytes] = []
        pending_bytes = 0
        # read1 (one recv each) so that the rate is checked as bytes come; the pieces are handed
        # on in _CHUNK batches, as the digest and the layer writer work best on large ones.
        while piece := self.raw.read1(_CHUNK):
            pending.append(piece)
            pending_bytes += len(piece)
            window_bytes += len(piece)
            if min_rate:
                elapsed = time.monotonic() - window_start
                if elapsed >= window:
                    if window_bytes < min_rate * elapsed:
                        self.raw.close()
                        raise _Drip(
                            f"{_size(window_bytes)} in the last {elapsed:.1f} s, below the floor of "
                            f"{_size(min_rate)}/s: the registry drips the blob too slowly"
                        )
                    window_start, window_bytes = time.monotonic(), 0
            if pending_bytes >= _CHUNK:
                total += pending_bytes
                yield b"".join(pending)
                pending, pending_bytes = [], 0
        self.raw.read()  # at the end: marks the response done, so the connection can serve the next
        if pending:
            total += pending_bytes
            yield b"".join(pending)
        if expected is not None and total < expected:
            raise http.client.IncompleteRead(b"", expected - total)

    def close(self) -> None:
        self.raw.close()


class _Drip(TimeoutError):
    """Bytes keep coming, too slowly to finish a small document within the timeout."""


Body = bytes | Callable[[], Iterable[bytes]] | None


class RegistryClient:
    def __init__(self, registry: str, options: RegistryOptions | None = None) -> None:
        self.registry = registry
        self.options = options or RegistryOptions()
        self.scheme = "http" if self.options.insecure else "https"
        self._conns: dict[tuple[str, str], http.client.HTTPConnection] = {}
        self._auth: dict[str, str] = {}
        self._ssl: ssl.SSLContext | None = None

    # -- transport -------------------------------------------------------------------------------
    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=self.options.ca_file)
        return self._ssl

    def _conn(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        key = (scheme, netloc)
        conn = self._conns.get(key)
        if conn is None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(
                    netloc, timeout=self.options.timeout, context=self._context()
                )
            else:
                conn = http.client.HTTPConnection(netloc, timeout=self.options.timeout)
            self._conns[key] = conn
        return conn

    def _drop(self, scheme: str, netloc: str) -> None:
        conn = self._conns.pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.registry}{path}"

    def _send(self, method: str, url: str, headers: dict[str, str], body: Body) -> _Response:
        seen: set[str] = set()
        for _ in range(MAX_REDIRECTS + 1):
            if url in seen:
                raise RegistryError(
                    f"registry redirects in a loop (back to {_safe(url)})", registry=self.registry
                )
            seen.add(url)
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https"):
                raise RegistryError(f"registry redirected to an unsupported URL scheme {parts.scheme!r}")
            if parts.scheme == "http" and not self.options.insecure:
                raise RegistryError(f"refusing plain http to {_safe(url)}: use --insecure to allow it")
            conn = self._conn(parts.scheme, parts.netloc)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            payload: Any = body() if callable(body) else body
            try:
                conn.request(method, target, body=payload, headers=headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException):
                self._drop(parts.scheme, parts.netloc)
                raise
            if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                try:
                    _Response(resp, url).read(64 << 10, self._deadline(), "redirect")
                except (BerthError, OSError, http.client.HTTPException):
                    self._drop(parts.scheme, parts.netloc)
                new = urllib.parse.urljoin(url, resp.getheader("Location") or "")
                if urllib.parse.urlsplit(new).netloc != parts.netloc:
                    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                if resp.status == 303:
                    method, body = "GET", None
                url = new
                continue
            if resp.getheader("Connection", "").lower() == "close":
                # Read by the caller, then the connection is gone: reconnect next time.
                self._conns.pop((parts.scheme, parts.netloc), None)
            return _Response(resp, url)
        raise RegistryError(f"registry redirected more than {MAX_REDIRECTS} times", registry=self.registry)

    def request(
        self,
        method: str,
        path_or_url: str,
        scope: str,
        headers: dict[str, str] | None = None,
        body: Body = None,
        ok: tuple[int, ...] = (200,),
    ) -> _Response:
        """One API call with auth, retries and error mapping; returns a response with status in `ok`."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        authed = False
        delay = self.options.backoff
        last: str = ""
        attempt = 0
        while attempt <= self.options.retries:
            hdrs = dict(headers or {})
            if scope in self._auth:
                hdrs["Authorization"] = self._auth[scope]
            try:
                resp = self._send(method, url, hdrs, body)
            except TimeoutError:
                last = self._stalled()
            except (OSError, http.client.HTTPException) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status == 401 and not authed:
                    challenge = resp.header("WWW-Authenticate") or ""
                    self._discard(resp)
                    self._authenticate(challenge, scope)
                    authed = True
                    continue  # answering a challenge is no failed attempt
                if resp.status in ok:
                    return resp
                if resp.status not in RETRY_STATUS:
                    raise self._error(method, url, resp)
                last = f"HTTP {resp.status}"
                self._discard(resp)
            if attempt < self.options.retries:
                time.sleep(delay)
                delay *= 2
            attempt += 1
        raise RegistryError(
            f"{method} {_safe(url)} failed after {_attempts(self.options.retries + 1)}: {last}",
            registry=self.registry,
        )

    def _stalled(self) -> str:
        return f"the registry sent nothing for {self.options.timeout:g} s (it stalls)"

    def _deadline(self) -> float:
        return time.monotonic() + self.options.timeout

    def _discard(self, resp: _Response) -> None:
        """Read a body nobody needs (bounded): on a kept-alive connection it must not linger."""
        try:
            resp.read(64 << 10, self._deadline())
        except (BerthError, OSError, http.client.HTTPException):
            self.close()

    def _error(self, method: str, url: str, resp: _Response) -> BerthError:
        try:
            body = resp.read(64 << 10, self._deadline(), "error answer")
        except (BerthError, OSError, http.client.HTTPException):
            self.close()
            body = b""
        detail = ""
        try:
            errors = json.loads(body).get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
        except (ValueError, AttributeError):
            pass
        message = f"{method} {_safe(url)}: HTTP {resp.status}" + (f" ({detail[:500]})" if detail else "")
        if resp.status == 401:
            if self.options.credentials is None:
                return PermissionDenied(
                    f"registry refused anonymous access (give credentials): {message}", registry=self.registry
                )
            return PermissionDenied(f"registry refused the credentials: {message}", registry=self.registry)
        if resp.status == 403:
            return PermissionDenied(message, registry=self.registry)
        if resp.status == 404:
            return NotFound(message, registry=self.registry)
        return RegistryError(message, registry=self.registry, status=resp.status)

    def _document(self, path: str, scope: str, headers: dict[str, str], limit: int, what: str) -> _Response:
        """GET a small document whole (bounded size and time), retried like any request."""
        delay = self.options.backoff
        for attempt in range(self.options.retries + 1):
            resp = self.request("GET", path, scope, headers=headers)
            try:
                resp.body = resp.read(limit, self._deadline(), what)
                return resp
            except _Drip as exc:
                last = str(exc)
            except TimeoutError:
                last = self._stalled()
            except (OSError, http.client.HTTPException) as exc:
                last = f"{type(exc).__name__}: {exc}"
            self.close()
            if attempt < self.options.retries:
                time.sleep(delay)
                delay *= 2
        raise RegistryError(
            f"GET {_safe(self.url(path))} failed after {_attempts(self.options.retries + 1)}: {last}",
            registry=self.registry,
        )

    # -- auth ------------------------------------------------------------------------------------
    def _authenticate(self, challenge: str, scope: str) -> None:
        """Answer a 401 challenge: Basic from the credentials, or a token from the Bearer realm.

        The token is asked for every scope the challenge names (a cross-repo mount names two),
        with the credentials if there are any (anonymous otherwise: pull-only tokens), and it is
        kept for `scope` so later requests of the same kind reuse it.
        """
        scheme, params = _parse_challenge(challenge)
        creds = self.options.credentials
        if scheme == "basic":
            if creds is None:
                raise PermissionDenied(f"registry {self.registry} needs credentials (basic auth)")
            self._auth[scope] = creds.basic()
            return
        if scheme != "bearer" or "realm" not in params:
            raise PermissionDenied(f"registry {self.registry} asks for unsupported auth {scheme or 'none'!r}")
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        scopes = (params.get("scope") or "").split() + scope.split()
        query += [("scope", s) for s in _merge_scopes(scopes)]
        if creds is not None:
            query.append(("account", creds.username))
        realm = params["realm"]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        hdrs = {"Authorization": creds.basic()} if creds is not None else {}
        try:
            resp = self._send("GET", url, hdrs, None)
            body = resp.read(1 << 20, self._deadline(), "token answer")
        except TimeoutError:
            raise RegistryError(
                f"token service of {self.registry} at {_safe(realm)}: {self._stalled()}",
                registry=self.registry,
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryError(
                f"token service of {self.registry} at {_safe(realm)}: {type(exc).__name__}: {exc}",
                registry=self.registry,
            ) from None
        if resp.status in (401, 403):
            who = f"the credentials of {creds.username!r}" if creds else "anonymous access"
            raise PermissionDenied(f"token service of {self.registry} refused {who} (HTTP {resp.status})")
        if resp.status != 200:
            raise PermissionDenied(f"token service of {self.registry} answered HTTP {resp.status}")
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token or not _TOKEN.fullmatch(token):
            raise PermissionDenied(f"token service of {self.registry} returned no usable token")
        self._auth[scope] = f"Bearer {token}"

    # -- API -------------------------------------------------------------------------------------
    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str]:
        """A manifest or index (at most MAX_MANIFEST_BYTES) and the media type the registry claims.

        A Docker-Content-Digest header, when the registry sends one, must be a valid digest and
        match the bytes.
        """
        resp = self._document(
            f"/v2/{repo}/manifests/{reference}",
            _pull(repo),
            {"Accept": mt.ACCEPT},
            mt.MAX_MANIFEST_BYTES,
            f"manifest {repo}:{reference}" if ":" not in reference else f"manifest {repo}@{reference}",
        )
        data = resp.body
        claimed = resp.header("Docker-Content-Digest")
        if claimed:
            parse_digest(claimed.strip(), "the registry's Docker-Content-Digest header")
            if claimed.strip() != sha256_bytes(data):
                raise IntegrityError(
                    f"registry says manifest {repo}:{reference} has digest {claimed.strip()}, "
                    f"its bytes have {sha256_bytes(data)}"
                )
        return data, (resp.header("Content-Type") or "").split(";")[0].strip()

    def blob_exists(self, repo: str, digest: str, scope: str | None = None) -> int | None:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope or _pull(repo), ok=(200, 404))
        resp.read()
        if resp.status == 404:
            return None
        length = resp.length()
        return -1 if length is None else length

    def fetch_blob(
        self, repo: str, digest: str, sink: Callable[[Iterable[bytes]], Any], size: int | None = None
    ) -> Any:
        """GET a blob and hand its body to `sink` (which verifies it); retried on a cut connection.

        With `size` (the descriptor's), a Content-Length that disagrees is refused before a byte
        of the body is read: a registry may not make us download more (or less) than promised.
        """
        delay = self.options.backoff
        for attempt in range(self.options.retries + 1):
            resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", _pull(repo))
            length = resp.length()
            if size is not None and length is not None and length != size:
                resp.close()
                self.close()
                raise IntegrityError(
                    f"registry sends blob {digest} with Content-Length {length}, its descriptor says {size}",
                    digest=digest,
                )
            try:
                return sink(resp.chunks(self.options.min_rate, self.options.timeout))
            except (OSError, http.client.HTTPException) as exc:
                resp.close()
                self.close()
                if attempt == self.options.retries:
                    if isinstance(exc, _Drip):
                        reason = str(exc)
                    elif isinstance(exc, TimeoutError):
                        reason = self._stalled()
                    else:
                        reason = f"{type(exc).__name__}: {exc}"
                    raise RegistryError(
                        f"download of {digest} failed after {_attempts(attempt + 1)}: {reason}",
                        registry=self.registry,
                    ) from exc
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def mount_blob(self, repo: str, digest: str, source_repo: str) -> str | None:
        """Ask the registry to link a blob it has in `source_repo` into `repo` (no upload).

        Returns "mounted", or the upload location when the registry declines (then upload there).
        The token for this call covers both repositories: push on `repo`, pull on `source_repo`.
        """
        scope = f"{_push(repo)} {_pull(source_repo)}"
        query = urllib.parse.urlencode({"mount": digest, "from": source_repo})
        try:
            resp = self.request("POST", f"/v2/{repo}/blobs/uploads/?{query}", scope, body=b"", ok=(201, 202))
        except PermissionDenied:
            return None  # no pull right on the source: an ordinary upload will do
        self._discard(resp)
        if resp.status == 201:
            return "mounted"
        return self._location(resp)

    def upload_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        open_chunks: Callable[[], Iterable[bytes]],
        progress: Progress | None = None,
        mount_from: Iterable[str] = (),
    ) -> str:
        """Upload unless the registry has it: a cross-repo mount if a source repo is known, else a
        monolithic PUT, or PATCH chunks when chunk_size is set."""
        scope = _push(repo)
        if self.blob_exists(repo, digest, scope) is not None:
            return "exists"
        location = None
        for source in mount_from:
            if source == repo:
                continue
            got = self.mount_blob(repo, digest, source)
            if got == "mounted":
                return "mounted"
            location = got
            break
        if location is None:
            resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope, body=b"", ok=(202,))
            self._discard(resp)
            location = self._location(resp)
        if self.options.chunk_size and size > self.options.chunk_size:
            offset = 0
            for piece in _rechunk(open_chunks(), self.options.chunk_size):
                resp = self.request(
                    "PATCH",
                    location,
                    scope,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                        "Content-Length": str(len(piece)),
                    },
                    body=piece,
                    ok=(202,),
                )
                self._discard(resp)
                location = self._location(resp)
                offset += len(piece)
                if progress:
                    progress(len(piece))
            resp = self.request("PUT", _with_digest(location, digest), scope, body=b"", ok=(201,))
            self._discard(resp)
            return "chunked"

        def body() -> Iterable[bytes]:
            for chunk in open_chunks():
                if progress:
                    progress(len(chunk))
                yield chunk

        resp = self.request(
            "PUT",
            _with_digest(location, digest),
            scope,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            body=_sized(body, size),
            ok=(201,),
        )
        self._discard(resp)
        return "uploaded"

    def _location(self, resp: _Response) -> str:
        location = resp.header("Location")
        if not location:
            raise RegistryError(f"registry {self.registry} gave no upload location")
        return urllib.parse.urljoin(resp.url, location)

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str | None:
        resp = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            _push(repo),
            headers={"Content-Type": media_type},
            body=data,
            ok=(201, 200),
        )
        self._discard(resp)
        return resp.header("Docker-Content-Digest")


# What a token may look like in an Authorization header (RFC 6750's b64token, as JWTs are).
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _attempts(n: int) -> str:
    return f"{n} attempt" + ("" if n == 1 else "s")


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n} bytes"


def _sized(factory: Callable[[], Iterable[bytes]], size: int) -> Callable[[], Any]:
    """http.client streams a file-like body with the Content-Length we set: wrap the chunks."""
    from berth.images.chunks import ChunkReader

    return lambda: ChunkReader(factory())


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    buf = b""
    for chunk in chunks:
        buf += chunk
        while len(buf) >= size:
            yield buf[:size]
            buf = buf[size:]
    if buf:
        yield buf


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})


def _pull(repo: str) -> str:
    return f"repository:{repo}:pull"


def _push(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def _merge_scopes(scopes: list[str]) -> list[str]:
    """One scope per resource with the union of its actions, in first-seen order: the challenge's
    `repository:r:pull` and our `repository:r:pull,push` become one `repository:r:pull,push`."""
    merged: dict[str, list[str]] = {}
    for scope in scopes:
        resource, _, actions = scope.rpartition(":")
        if not resource:
            continue
        have = merged.setdefault(resource, [])
        have += [a for a in actions.split(",") if a and a not in have]
    return [f"{resource}:{','.join(actions)}" for resource, actions in merged.items()]


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


def _safe(url: str) -> str:
    """A URL for messages: no query (upload state, tokens) and no userinfo."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"
