"""A client of the OCI distribution API over http.client: manifests and blobs, up and down.

Auth is negotiated from the registry's 401 challenge (anonymous first; Basic; Bearer tokens from the
realm it names, cached per scope). Transient failures (connection cut, stall, 429, 5xx) are retried
with exponential backoff; redirects are followed a bounded number of times, dropping credentials
when they lead to another host. Credentials live only in memory: `Credentials.__repr__` masks them
and no message built here includes them.
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

from berth.errors import BerthError, InvalidInput, NotFound, PermissionDenied, RegistryError
from berth.images import mediatypes as mt

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
    chunk_size: int = 0  # 0: monolithic uploads; >0: chunked PATCH uploads of this size


class _Response:
    """A response whose body the caller must read or close before the next request."""

    def __init__(self, resp: http.client.HTTPResponse, url: str) -> None:
        self.raw = resp
        self.status = resp.status
        self.url = url

    def header(self, name: str) -> str | None:
        return self.raw.getheader(name)

    def read(self, limit: int | None = None) -> bytes:
        if limit is None:
            return self.raw.read()
        data = self.raw.read(limit + 1)
        if len(data) > limit:
            self.raw.close()
            raise InvalidInput(f"registry response from {self.url} is larger than {limit} bytes")
        return data

    def chunks(self) -> Iterator[bytes]:
        while chunk := self.raw.read(_CHUNK):
            yield chunk

    def close(self) -> None:
        self.raw.close()


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
        for _ in range(MAX_REDIRECTS + 1):
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https"):
                raise RegistryError(f"registry redirected to an unsupported URL scheme {parts.scheme!r}")
            if parts.scheme == "http" and not self.options.insecure:
                raise RegistryError("registry redirected to plain http; use --insecure to allow it")
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
                resp.read()
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
        raise RegistryError(f"registry redirected more than {MAX_REDIRECTS} times (a redirect loop?)")

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
        for attempt in range(self.options.retries + 1):
            hdrs = dict(headers or {})
            if scope in self._auth:
                hdrs["Authorization"] = self._auth[scope]
            try:
                resp = self._send(method, url, hdrs, body)
            except (OSError, http.client.HTTPException) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status == 401 and not authed:
                    challenge = resp.header("WWW-Authenticate") or ""
                    resp.read()
                    self._authenticate(challenge, scope)
                    authed = True
                    continue
                if resp.status in ok:
                    return resp
                if resp.status not in RETRY_STATUS:
                    raise self._error(method, url, resp)
                last = f"HTTP {resp.status}"
                resp.read()
            if attempt < self.options.retries:
                time.sleep(delay)
                delay *= 2
        raise RegistryError(
            f"{method} {_safe(url)} failed after {self.options.retries + 1} attempts: {last}",
            registry=self.registry,
        )

    def _error(self, method: str, url: str, resp: _Response) -> BerthError:
        try:
            body = resp.read(64 << 10)
        except BerthError:
            body = b""
        detail = ""
        try:
            errors = json.loads(body).get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
        except (ValueError, AttributeError):
            pass
        message = f"{method} {_safe(url)}: HTTP {resp.status}" + (f" ({detail})" if detail else "")
        if resp.status == 401:
            return PermissionDenied(f"registry refused the credentials: {message}", registry=self.registry)
        if resp.status == 403:
            return PermissionDenied(message, registry=self.registry)
        if resp.status == 404:
            return NotFound(message, registry=self.registry)
        return RegistryError(message, registry=self.registry, status=resp.status)

    # -- auth ------------------------------------------------------------------------------------
    def _authenticate(self, challenge: str, scope: str) -> None:
        scheme, params = _parse_challenge(challenge)
        creds = self.options.credentials
        if scheme == "basic":
            if creds is None:
                raise PermissionDenied(f"registry {self.registry} needs credentials (basic auth)")
            self._auth[scope] = creds.basic()
            return
        if scheme != "bearer" or "realm" not in params:
            raise PermissionDenied(f"registry {self.registry} asks for unsupported auth {scheme or 'none'!r}")
        query = {"service": params.get("service", "")}
        query["scope"] = params.get("scope") or scope
        if creds is not None:
            query["account"] = creds.username
        realm = params["realm"]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        hdrs = {"Authorization": creds.basic()} if creds is not None else {}
        resp = self._send("GET", url, hdrs, None)
        if resp.status != 200:
            resp.read()
            raise PermissionDenied(f"token service of {self.registry} answered HTTP {resp.status}")
        try:
            doc = json.loads(resp.read(1 << 20))
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise PermissionDenied(f"token service of {self.registry} returned no token")
        self._auth[scope] = f"Bearer {token}"

    # -- API -------------------------------------------------------------------------------------
    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str]:
        resp = self.request(
            "GET", f"/v2/{repo}/manifests/{reference}", _pull(repo), headers={"Accept": mt.ACCEPT}
        )
        data = resp.read(mt.MAX_MANIFEST_BYTES)
        return data, (resp.header("Content-Type") or "").split(";")[0].strip()

    def blob_exists(self, repo: str, digest: str, scope: str | None = None) -> int | None:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope or _pull(repo), ok=(200, 404))
        resp.read()
        if resp.status == 404:
            return None
        length = resp.header("Content-Length")
        return int(length) if length and length.isdigit() else -1

    def fetch_blob(self, repo: str, digest: str, sink: Callable[[Iterable[bytes]], Any]) -> Any:
        """GET a blob and hand its body to `sink` (which verifies it); retried on a cut connection."""
        delay = self.options.backoff
        for attempt in range(self.options.retries + 1):
            resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", _pull(repo))
            try:
                return sink(resp.chunks())
            except (OSError, http.client.HTTPException) as exc:
                resp.close()
                self.close()
                if attempt == self.options.retries:
                    raise RegistryError(f"download of {digest} kept failing: {exc}") from exc
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def upload_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        open_chunks: Callable[[], Iterable[bytes]],
        progress: Progress | None = None,
    ) -> str:
        """Upload unless the registry has it: monolithic PUT, or PATCH chunks when chunk_size is set."""
        scope = _push(repo)
        if self.blob_exists(repo, digest, scope) is not None:
            return "exists"
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope, body=b"", ok=(202,))
        resp.read()
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
                resp.read()
                location = self._location(resp)
                offset += len(piece)
                if progress:
                    progress(len(piece))
            resp = self.request("PUT", _with_digest(location, digest), scope, body=b"", ok=(201,))
            resp.read()
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
        resp.read()
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
        resp.read()
        return resp.header("Docker-Content-Digest")


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
