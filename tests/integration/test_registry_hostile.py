"""Hostile registries (issue 8, part 2): `berth image pull` against a registry that lies.

Each case seeds the fake registry (hostile_registry.py) with a fresh two-layer image and makes it
misbehave: wrong digests and sizes, trailing bytes, malformed or unknown digests, huge or recursive
manifests, redirect loops, stalls and drips, wrong Content-Types, missing layers. For each, the pull
must fail with an error naming the problem and a non-zero exit code, the store must hold exactly
what it held before (every path, size and content under the data dir: no blob, no unpacked layer,
no temp file, no tag, no record) and `berth image verify` must pass.

Runs on the machine itself (a temp data dir on a real filesystem, the registry on loopback); the
store is shared by the module's cases, seeded with one good image so that "nothing new" has
something to compare against.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hostile_registry import (
    OCI_INDEX,
    OCI_MANIFEST,
    Answer,
    FakeHandler,
    HostileRegistry,
    Image,
    gzip_layer,
    image_docs,
    sha256,
)
from images_helpers import berth

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(os.geteuid() != 0, reason="the image store needs root (mknod, trusted xattrs)"),
]

# The runtime's caps and the options every hostile pull runs with (quick failures).
MANIFEST_CAP = 4 << 20  # berth.images.mediatypes.MAX_MANIFEST_BYTES, as podman's containers/image
PULL_ARGS = ("--insecure", "--retries", "1", "--timeout", "0.5")


@pytest.fixture(scope="module")
def fake() -> Iterator[HostileRegistry]:
    reg = HostileRegistry()
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def store(fake: HostileRegistry, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("hostile-registry") / "data"
    fake.publish("good/app", "1", fresh("good"))
    out = berth(data, "image", "pull", f"{fake.host}/good/app:1", "--insecure")
    assert out["data"]["digest"]
    return data


def fresh(name: str) -> Image:
    """A valid two-layer image whose content no other case shares (so every blob is new)."""
    return image_docs(
        [
            gzip_layer({f"etc/{name}-1": f"first layer of {name}\n".encode()}),
            gzip_layer({f"srv/{name}-2": hashlib.sha256(name.encode()).digest() * 512}),
        ]
    )


def listing(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every path under the data dir: mode, size, content hash (symlinks: their target)."""
    out = {}
    for dirpath, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(dirpath) / name
            st = os.lstat(path)
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(path)
            out[str(path.relative_to(root))] = (st.st_mode, st.st_size, digest)
    return out


# -- the cases ---------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    setup: Callable[[HostileRegistry, str], str]  # (fake, repo) -> the reference to pull (no host)
    kind: str  # the error kind
    says: list[str] = field(default_factory=list)  # what the message must contain


def _blob_path(image: Image, i: int) -> str:
    return f"/v2/{{repo}}/blobs/{sha256(image.layers[i][0])}"


def _with_layer(image: Image, i: int, blob: bytes, **desc: Any) -> Image:
    """The image with layer i's blob replaced and its descriptor updated to match (or `desc`)."""
    out = copy.deepcopy(image)
    out.layers[i] = (blob, image.layers[i][1])
    out.manifest["layers"][i].update(digest=sha256(blob), size=len(blob), **desc)
    return out


def serve_second_layer(
    answer: Callable[[Image], Answer | Callable[[FakeHandler], None]],
) -> Callable[..., str]:
    """Publish a fresh image and answer GETs of its second layer with `answer(image)`."""

    def setup(fake: HostileRegistry, repo: str) -> str:
        image = fresh(repo)
        fake.publish(repo, "1", image)
        fake.answer(_blob_path(image, 1).format(repo=repo), answer(image))
        return f"{repo}:1"

    return setup


def publish(edit: Callable[[Image], Image | bytes], ctype: str = OCI_MANIFEST) -> Callable[..., str]:
    """Publish a fresh image edited by `edit` (which may return raw manifest bytes)."""

    def setup(fake: HostileRegistry, repo: str) -> str:
        image = fresh(repo)
        fake.publish(repo, "ok", image)  # every blob served
        edited = edit(image)
        if isinstance(edited, Image):
            fake.publish(repo, "1", edited)
        else:
            fake.put_manifest(repo, "1", edited, ctype)
        return f"{repo}:1"

    return setup


def _flip(data: bytes) -> bytes:
    mid = len(data) // 2
    return data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :]


def _content_length(n: int, body: bytes) -> Answer:
    return Answer(200, {"Content-Length": str(n), "Content-Type": "application/octet-stream"}, body)


def _uppercase(image: Image) -> bytes:
    doc = copy.deepcopy(image.manifest)
    digest = doc["layers"][1]["digest"]
    doc["layers"][1]["digest"] = "sha256:" + digest[7:].upper()
    return json.dumps(doc).encode()


def _algorithm(image: Image) -> bytes:
    doc = copy.deepcopy(image.manifest)
    doc["layers"][1]["digest"] = "sha999:" + doc["layers"][1]["digest"][7:]
    return json.dumps(doc).encode()


def _sha512(image: Image) -> bytes:
    doc = copy.deepcopy(image.manifest)
    doc["layers"][1]["digest"] = "sha512:" + hashlib.sha512(image.layers[1][0]).hexdigest()
    return json.dumps(doc).encode()


def _huge(image: Image) -> bytes:
    doc = copy.deepcopy(image.manifest)
    doc["annotations"] = {f"pad.{i}": "x" * 1000 for i in range(6 * 1024)}  # ~6 MiB
    return json.dumps(doc).encode()


def _platform_entry(digest: str, size: int, media_type: str = OCI_MANIFEST) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": digest,
        "size": size,
        "platform": {"os": "linux", "architecture": "amd64"},
    }


def nested_index(fake: HostileRegistry, repo: str) -> str:
    """An index whose only entry is another index, 8 deep."""
    image = fresh(repo)
    child = fake.publish(repo, "leaf", image)
    size = len(image.manifest_bytes)
    media_type = OCI_MANIFEST
    for depth in range(8):
        doc = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [_platform_entry(child, size, media_type)],
            }
        ).encode()
        child, size, media_type = fake.put_manifest(repo, f"d{depth}", doc, OCI_INDEX), len(doc), OCI_INDEX
    return f"{repo}:d7"


def index_to_index(fake: HostileRegistry, repo: str) -> str:
    """An index whose entry claims to be a manifest but is an index (pointing back at the first)."""
    inner = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    digest = fake.put_manifest(repo, None, inner, OCI_INDEX)
    outer = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [_platform_entry(digest, len(inner))]}
    ).encode()
    fake.put_manifest(repo, "1", outer, OCI_INDEX)
    return f"{repo}:1"


def index_self(fake: HostileRegistry, repo: str) -> str:
    """An index whose entry the registry answers with the index itself (a self-reference)."""
    fake_digest = sha256(b"whatever " + repo.encode())
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [_platform_entry(fake_digest, 300)]}
    ).encode()
    fake.put_manifest(repo, "1", index, OCI_INDEX)
    fake.manifests[(repo, fake_digest)] = (index, OCI_INDEX)
    return f"{repo}:1"


def redirect_loop(fake: HostileRegistry, repo: str) -> str:
    image = fresh(repo)
    fake.publish(repo, "1", image)
    path = _blob_path(image, 1).format(repo=repo)
    fake.answer(path, Answer(307, {"Location": path}))
    return f"{repo}:1"


def redirect_chain(fake: HostileRegistry, repo: str) -> str:
    image = fresh(repo)
    fake.publish(repo, "1", image)
    fake.answer(_blob_path(image, 1).format(repo=repo), Answer(302, {"Location": "/hop/0"}))
    for i in range(20):
        fake.answer(f"/hop/{i}", Answer(302, {"Location": f"/hop/{i + 1}"}))
    return f"{repo}:1"


def stall(handler: FakeHandler) -> None:
    handler.stall()


def stall_mid_body(image: Image) -> Callable[[FakeHandler], None]:
    blob = image.layers[1][0]

    def write(handler: FakeHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(blob)))
        handler.end_headers()
        handler.wfile.write(blob[: len(blob) // 2])
        handler.stall()

    return write


def drip_mid_body(image: Image) -> Callable[[FakeHandler], None]:
    """Half the blob at once, then a byte every 0.1 s: never silent for a whole timeout."""
    blob = image.layers[1][0]

    def write(handler: FakeHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(blob)))
        handler.end_headers()
        try:
            handler.wfile.write(blob[: len(blob) // 2])
            for i in range(len(blob) // 2, len(blob)):
                handler.wfile.write(blob[i : i + 1])
                handler.wfile.flush()
                if handler.owner.released.wait(0.1):
                    return
        except OSError:
            pass  # the client gave up
        handler.close_connection = True

    return write


def cut_mid_body(image: Image) -> Callable[[FakeHandler], None]:
    blob = image.layers[1][0]

    def write(handler: FakeHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(blob)))
        handler.end_headers()
        handler.wfile.write(blob[: len(blob) // 2])
        handler.close_connection = True

    return write


def drip_manifest(fake: HostileRegistry, repo: str) -> str:
    image = fresh(repo)
    fake.publish(repo, "ok", image)
    data = image.manifest_bytes

    def write(handler: FakeHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", OCI_MANIFEST)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        try:
            for i in range(len(data)):
                handler.wfile.write(data[i : i + 1])
                handler.wfile.flush()
                if fake.released.wait(0.2):
                    return
        except OSError:
            pass  # the client gave up
        handler.close_connection = True

    fake.answer(f"/v2/{repo}/manifests/1", write)
    return f"{repo}:1"


def stall_manifest(fake: HostileRegistry, repo: str) -> str:
    fake.answer(f"/v2/{repo}/manifests/1", stall)
    return f"{repo}:1"


def served_as(ctype: str) -> Callable[..., str]:
    def setup(fake: HostileRegistry, repo: str) -> str:
        image = fresh(repo)
        fake.publish(repo, "ok", image)
        fake.put_manifest(repo, "1", image.manifest_bytes, ctype)
        return f"{repo}:1"

    return setup


def header_digest(value: Callable[[Image], str]) -> Callable[..., str]:
    def setup(fake: HostileRegistry, repo: str) -> str:
        image = fresh(repo)
        fake.publish(repo, "ok", image)
        headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": value(image)}
        fake.answer(f"/v2/{repo}/manifests/1", Answer(200, headers, image.manifest_bytes))
        return f"{repo}:1"

    return setup


def missing_layer(fake: HostileRegistry, repo: str) -> str:
    image = fresh(repo)
    fake.publish(repo, "1", image)
    del fake.blobs[sha256(image.layers[1][0])]
    return f"{repo}:1"


def huge_unsized(fake: HostileRegistry, repo: str) -> str:
    data = _huge(fresh(repo))
    fake.answer(
        f"/v2/{repo}/manifests/1", Answer(200, {"Content-Type": OCI_MANIFEST}, data, content_length=False)
    )
    return f"{repo}:1"


CASES = [
    Case(
        "blob-digest-mismatch",
        serve_second_layer(lambda im: Answer(200, {}, _flip(im.layers[1][0]))),
        "integrity-error",
        ["does not match its digest"],
    ),
    Case(
        "content-length-larger-than-descriptor",
        serve_second_layer(
            lambda im: _content_length(len(im.layers[1][0]) + 4096, im.layers[1][0] + b"x" * 4096)
        ),
        "integrity-error",
        ["Content-Length", "descriptor says"],
    ),
    Case(
        "content-length-smaller-than-descriptor",
        serve_second_layer(lambda im: _content_length(len(im.layers[1][0]) - 10, im.layers[1][0][:-10])),
        "integrity-error",
        ["Content-Length", "descriptor says"],
    ),
    Case(
        "unsized-body-longer-than-descriptor",
        serve_second_layer(lambda im: Answer(200, {}, im.layers[1][0] + b"x" * 4096, content_length=False)),
        "integrity-error",
        ["larger than its declared size"],
    ),
    Case(
        "unsized-body-shorter-than-descriptor",
        serve_second_layer(lambda im: Answer(200, {}, im.layers[1][0][:-10], content_length=False)),
        "integrity-error",
        ["descriptor says"],
    ),
    Case(
        "trailing-bytes-after-gzip",
        publish(lambda im: _with_layer(im, 1, im.layers[1][0] + b"TRAILING GARBAGE after the gzip stream")),
        "invalid-input",
        ["cannot be decompressed"],
    ),
    Case("uppercase-hex-digest", publish(_uppercase), "invalid-input", ["lowercase hex"]),
    Case(
        "unknown-digest-algorithm",
        publish(_algorithm),
        "invalid-input",
        ["'sha999'", "unknown to the OCI spec"],
    ),
    Case(
        "sha512-digest",
        publish(_sha512),
        "invalid-input",
        ["'sha512'", "registered by the OCI spec", "sha256 only"],
    ),
    Case(
        "uppercase-docker-content-digest",
        header_digest(lambda im: "sha256:" + im.digest[7:].upper()),
        "invalid-input",
        ["Docker-Content-Digest"],
    ),
    Case(
        "docker-content-digest-mismatch",
        header_digest(lambda im: sha256(b"another manifest")),
        "integrity-error",
        ["registry says manifest"],
    ),
    Case("manifest-over-cap", publish(_huge), "invalid-input", ["4 MiB cap"]),
    Case("manifest-over-cap-unsized", huge_unsized, "invalid-input", ["4 MiB cap"]),
    Case("index-nested-deep", nested_index, "invalid-input", ["nested indexes are refused"]),
    Case("index-entry-is-an-index", index_to_index, "invalid-input", ["nested indexes are refused"]),
    Case("index-references-itself", index_self, "integrity-error", ["does not match"]),
    Case("redirect-loop", redirect_loop, "registry-error", ["redirects in a loop"]),
    Case("too-many-redirects", redirect_chain, "registry-error", ["redirected more than 5 times"]),
    Case("stall-before-answer", stall_manifest, "registry-error", ["sent nothing for 0.5 s", "stalls"]),
    Case("stall-mid-blob", serve_second_layer(stall_mid_body), "registry-error", ["sent nothing for 0.5 s"]),
    Case("drip-manifest", drip_manifest, "registry-error", ["drips"]),
    Case(
        "drip-mid-blob",
        serve_second_layer(drip_mid_body),
        "registry-error",
        ["below the floor", "2 attempts"],
    ),
    Case("cut-mid-blob", serve_second_layer(cut_mid_body), "registry-error", ["IncompleteRead"]),
    Case(
        "server-error-forever",
        serve_second_layer(lambda im: Answer(500, {}, b"oops")),
        "registry-error",
        ["HTTP 500", "2 attempts"],
    ),
    Case("content-type-html", served_as("text/html"), "invalid-input", ["Content-Type 'text/html'"]),
    Case(
        "content-type-contradicts-document", served_as(OCI_INDEX), "invalid-input", ["but the document says"]
    ),
    Case("missing-layer", missing_layer, "not-found", ["HTTP 404"]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_registry(
    case: Case, fake: HostileRegistry, store: Path, pytestconfig: pytest.Config
) -> None:
    rec = getattr(pytestconfig, "berth_reliability", None)
    if rec is not None:
        rec.inputs(1, "hostile registry answers")
        rec.guard("corrupt-store")
    repo = f"hostile/{case.name}"
    ref = case.setup(fake, repo)
    before = listing(store)
    started = time.monotonic()
    out = berth(store, "image", "pull", f"{fake.host}/{ref}", *PULL_ARGS, check=False)
    took = time.monotonic() - started
    assert out["exit_code"] != 0, f"{case.name}: the pull succeeded: {out}"
    error = out["error"]
    assert error["kind"] == case.kind, error
    for words in case.says:
        assert words in error["message"], error
    assert listing(store) == before, f"{case.name}: the store changed"
    verify = berth(store, "image", "verify", check=False)
    assert verify["ok"] and verify["exit_code"] == 0, verify
    # Bounded: the slowest case is two attempts of a 0.5 s timeout (a generous bound, not a benchmark).
    assert took < 30, f"{case.name}: the pull took {took:.0f} s"


def test_good_image_pulls_from_the_fake(fake: HostileRegistry, store: Path) -> None:
    """The fake is a registry a correct client can use: the same image through an index works."""
    repo = "good/indexed"
    image = fresh(repo)
    digest = fake.publish(repo, "m", image)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [_platform_entry(digest, len(image.manifest_bytes))],
        }
    ).encode()
    fake.put_manifest(repo, "1", index, OCI_INDEX)
    fake.peers.clear()
    out = berth(store, "image", "pull", f"{fake.host}/{repo}:1", "--insecure")
    assert out["data"]["digest"] == digest and out["data"]["index_digest"] == sha256(index)
    # Every document and blob once, all over one kept-alive connection: no request was retried
    # (a response left unfinished makes http.client refuse the next one, silently costing a retry).
    paths = [path for path, _ in fake.peers if path != "/v2/"]
    assert sorted(paths) == sorted(set(paths)), fake.peers
    assert len({port for _, port in fake.peers}) == 1, fake.peers
    berth(store, "image", "rm", f"{fake.host}/{repo}:1")
    berth(store, "image", "prune")


def test_corrupt_blob_is_detected_before_use_and_healed(
    fake: HostileRegistry, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    """A stored blob damaged afterwards: export (a use) and verify refuse it; a re-pull heals it.

    A truncated blob is seen by its size and a re-pull alone fetches it again; a flipped byte
    needs the hash, which verify computes and `--repair` acts on before the re-pull.
    """
    rec = getattr(pytestconfig, "berth_reliability", None)
    if rec is not None:
        rec.faults(2, "blob corrupted on disk")
        rec.guard("corrupt-store")
    data = tmp_path / "data"
    repo = "heal/app"
    image = fresh(repo)
    fake.publish(repo, "1", image)
    ref = f"{fake.host}/{repo}:1"
    berth(data, "image", "pull", ref, "--insecure")
    blob = data / "images" / "blobs" / "sha256" / sha256(image.layers[1][0])[7:]
    good = blob.read_bytes()

    blob.write_bytes(_flip(good))
    export = berth(data, "image", "export", ref, str(tmp_path / "out"), check=False)
    assert export["error"]["kind"] == "integrity-error", export
    bad = berth(data, "image", "verify", check=False)
    assert bad["error"]["kind"] == "integrity-error" and bad["exit_code"] != 0
    berth(data, "image", "verify", "--repair")
    healed = berth(data, "image", "pull", ref, "--insecure")
    assert "fetch-blob" in {a["action"] for a in healed["actions"]}
    assert blob.read_bytes() == good
    assert berth(data, "image", "verify")["data"]["ok"]

    blob.write_bytes(good[:-100])
    assert berth(data, "image", "verify", check=False)["error"]["kind"] == "integrity-error"
    berth(data, "image", "pull", ref, "--insecure")
    assert blob.read_bytes() == good
    assert berth(data, "image", "verify")["data"]["ok"]


def test_cut_once_then_whole_is_retried(fake: HostileRegistry, tmp_path: Path) -> None:
    """A connection cut part-way through the manifest, the config and a layer, once each: the
    retries start each download over and the image arrives whole."""
    repo = "flaky/app"
    image = fresh(repo)
    fake.publish(repo, "1", image)
    bodies = {
        f"/v2/{repo}/manifests/1": (image.manifest_bytes, OCI_MANIFEST),
        f"/v2/{repo}/blobs/{sha256(image.config)}": (image.config, "application/octet-stream"),
        f"/v2/{repo}/blobs/{sha256(image.layers[1][0])}": (image.layers[1][0], "application/octet-stream"),
    }

    def once_cut(body: bytes, ctype: str) -> Callable[[FakeHandler], None]:
        calls = []

        def write(handler: FakeHandler) -> None:
            calls.append(1)
            handler.send_response(200)
            handler.send_header("Content-Type", ctype)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body if len(calls) > 1 else body[: len(body) // 2])
            handler.close_connection = len(calls) == 1

        return write

    for path, (body, ctype) in bodies.items():
        fake.answer(path, once_cut(body, ctype))
    data = tmp_path / "data"
    out = berth(data, "image", "pull", f"{fake.host}/{repo}:1", "--insecure", "--retries", "1")
    assert out["data"]["digest"] == image.digest
    assert all(fake.hits(path) == 2 for path in bodies), [fake.hits(p) for p in bodies]
    assert berth(data, "image", "verify")["data"]["ok"]
