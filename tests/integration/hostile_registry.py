"""A registry that lies: just enough of the OCI distribution API, served from memory on loopback.

`HostileRegistry` speaks `/v2/`, manifests by tag and digest, blobs (GET and HEAD) over HTTP/1.1
with keep-alive, like a real registry. A test seeds it with a valid image (`image`), then makes it
misbehave: replace what a path answers (`answer`: status, headers, body, or a function that writes
the raw response itself: stall, drip, redirect, cut), or publish manifests that describe something
other than what the blobs are. Every request is recorded in `requests` (method, path, headers).

`gzip_layer` and `image_docs` build the documents; nothing here is checked in as binary data.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

Writer = Callable[["FakeHandler"], None]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def gzip_layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzip layer blob and its diff ID (the digest of the uncompressed tar)."""
    tar = layer_tar(files)
    return gzip.compress(tar, mtime=0), sha256(tar)


@dataclass
class Image:
    """A valid image's documents; tests edit them to make hostile ones."""

    layers: list[tuple[bytes, str]]  # (blob, diff ID)
    config: bytes = b""
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def manifest_bytes(self) -> bytes:
        return json.dumps(self.manifest).encode()

    @property
    def digest(self) -> str:
        return sha256(self.manifest_bytes)


def image_docs(layers: list[tuple[bytes, str]], arch: str = "amd64") -> Image:
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]},
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256(b), "size": len(b)} for b, _ in layers],
    }
    return Image(layers, config, manifest)


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_length: bool = True  # False: no Content-Length, body until the connection closes


class HostileRegistry:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.answers: dict[str, Answer | Writer] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.peers: list[tuple[str, int]] = []  # (path, client port) of each request: connection reuse
        self.released = threading.Event()  # set at stop: stalled handlers return
        registry = self

        class Handler(FakeHandler):
            owner = registry

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="hostile-registry", daemon=True)
        self.thread.start()
        self.host = f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def reset(self) -> None:
        """Back to a well-behaved, empty registry (between cases of one module)."""
        self.blobs.clear()
        self.manifests.clear()
        self.answers.clear()
        self.requests.clear()
        self.peers.clear()

    # -- content ---------------------------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        digest = sha256(data)
        self.blobs[digest] = data
        return digest

    def put_manifest(self, repo: str, tag: str | None, data: bytes, ctype: str = OCI_MANIFEST) -> str:
        digest = sha256(data)
        self.manifests[(repo, digest)] = (data, ctype)
        if tag:
            self.manifests[(repo, tag)] = (data, ctype)
        return digest

    def publish(self, repo: str, tag: str, image: Image) -> str:
        """Serve `image` as is (whatever its documents now say) under repo:tag."""
        for blob, _ in image.layers:
            self.put_blob(blob)
        self.put_blob(image.config)
        return self.put_manifest(repo, tag, image.manifest_bytes)

    def answer(self, path: str, what: Answer | Writer) -> None:
        """What GET/HEAD of `path` answers from now on, instead of the stored content."""
        self.answers[path] = what

    def hits(self, path: str) -> int:
        return sum(1 for _, p, _ in self.requests if p.split("?")[0] == path)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that give up (the point of most cases) are no news


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: HostileRegistry

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _serve(self, send_body: bool) -> None:
        reg = self.owner
        path = self.path.split("?")[0]
        reg.requests.append((self.command, self.path, dict(self.headers.items())))
        reg.peers.append((path, self.client_address[1]))
        custom = reg.answers.get(path)
        if callable(custom):
            custom(self)
            return
        if isinstance(custom, Answer):
            self.reply(custom, send_body)
            return
        if path == "/v2/":
            self.reply(Answer(200, {"Content-Type": "application/json"}, b"{}"), send_body)
            return
        parts = path.split("/")
        if len(parts) >= 5 and parts[1] == "v2" and parts[-2] in ("manifests", "blobs"):
            repo, kind, ref = "/".join(parts[2:-2]), parts[-2], parts[-1]
            if kind == "manifests" and (repo, ref) in reg.manifests:
                data, ctype = reg.manifests[(repo, ref)]
                headers = {"Content-Type": ctype, "Docker-Content-Digest": sha256(data)}
                self.reply(Answer(200, headers, data), send_body)
                return
            if kind == "blobs" and ref in reg.blobs:
                ctype = "application/octet-stream"
                self.reply(
                    Answer(200, {"Content-Type": ctype, "Docker-Content-Digest": ref}, reg.blobs[ref]),
                    send_body,
                )
                return
        body = json.dumps({"errors": [{"code": "NOT_FOUND", "message": "not here"}]}).encode()
        self.reply(Answer(404, {"Content-Type": "application/json"}, body), send_body)

    # -- tools for misbehaving writers -------------------------------------------------------------
    def reply(self, answer: Answer, send_body: bool = True) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if answer.content_length:
            if "Content-Length" not in answer.headers:
                self.send_header("Content-Length", str(len(answer.body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if send_body and self.command != "HEAD":
            self.wfile.write(answer.body)
        self.wfile.flush()

    def stall(self) -> None:
        """Keep the connection open and send nothing more until the registry stops."""
        self.wfile.flush()
        self.owner.released.wait(120)
        self.close_connection = True
