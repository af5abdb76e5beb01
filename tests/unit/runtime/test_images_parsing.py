"""Pure logic of the image code: references, digests, manifests, Containerfiles, ignore files,
config instructions, prune plans."""

from __future__ import annotations

import json

import pytest

from berth.errors import InvalidInput, Unsupported
from berth.images import gc
from berth.images import mediatypes as mt
from berth.images.containerfile import expand, parse
from berth.images.digest import chain_ids, parse_digest, sha256_bytes
from berth.images.ignore import parse_ignore
from berth.images.imageconfig import apply_metadata, empty_config, parse_changes
from berth.images.manifest import Descriptor, parse_manifest, select_platform
from berth.images.reference import parse_reference, pull_reference
from berth.images.store import ImageRecord

D = "sha256:" + "a" * 64


def test_references() -> None:
    assert parse_reference("busybox").tagged == "localhost/busybox:latest"
    assert pull_reference("busybox").name == "docker.io/library/busybox"
    ref = parse_reference("127.0.0.1:5000/a/b:v1")
    assert (ref.registry, ref.repository, ref.tag) == ("127.0.0.1:5000", "a/b", "v1")
    assert parse_reference(f"r.io/x@{D}").digest == D
    for bad in ("UPPER", "x/UPPER", "x:", "a//b", "", "x:tag:more", f"x@sha256:{'A' * 64}"):
        with pytest.raises(InvalidInput):
            parse_reference(bad)


def test_digests() -> None:
    assert parse_digest(D) == D
    with pytest.raises(InvalidInput, match="algorithm"):
        parse_digest("sha512:" + "a" * 128)
    with pytest.raises(InvalidInput):
        parse_digest("sha256:" + "A" * 64)
    a, b = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    assert chain_ids([a, b]) == [a, sha256_bytes(f"{a} {b}".encode())]


def _manifest(layer_type: str = mt.OCI_LAYER_GZIP) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": D, "size": 2},
            "layers": [{"mediaType": layer_type, "digest": D, "size": 3}],
        }
    ).encode()


def test_manifest_validation() -> None:
    assert parse_manifest(_manifest(), mt.OCI_MANIFEST).layers[0].size == 3
    with pytest.raises(InvalidInput, match="media type"):
        parse_manifest(_manifest("application/x-what"), mt.OCI_MANIFEST)
    with pytest.raises(InvalidInput, match="larger"):
        parse_manifest(b" " * (mt.MAX_MANIFEST_BYTES + 1), mt.OCI_MANIFEST)
    with pytest.raises(Unsupported):
        parse_manifest(
            _manifest("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"), mt.OCI_MANIFEST
        )


def test_platform_selection() -> None:
    arm = Descriptor(mt.OCI_MANIFEST, D, 1, {"os": "linux", "architecture": "arm64", "variant": "v8"})
    amd = Descriptor(mt.OCI_MANIFEST, "sha256:" + "b" * 64, 1, {"os": "linux", "architecture": "amd64"})
    att = Descriptor(mt.OCI_MANIFEST, "sha256:" + "c" * 64, 1, {"os": "unknown", "architecture": "unknown"})
    assert select_platform([att, arm, amd], {"os": "linux", "architecture": "amd64"}) is amd
    with pytest.raises(InvalidInput, match="no manifest for linux/s390x"):
        select_platform([arm, amd], {"os": "linux", "architecture": "s390x"})


def test_containerfile_parse_and_errors() -> None:
    text = (
        "# escape=\\\nFROM scratch\n\nENV A=1 \\\n  # comment inside\n  B=2\n"
        'COPY --chown=1:1 a /b\nCMD ["x"]\n'
    )
    instrs = parse(text)
    assert [(i.line, i.keyword) for i in instrs] == [(2, "FROM"), (4, "ENV"), (7, "COPY"), (8, "CMD")]
    assert instrs[2].flags == {"chown": "1:1"} and instrs[3].json_args == ["x"]
    with pytest.raises(InvalidInput, match="Containerfile:3: unknown instruction 'FROBNICATE'"):
        parse("FROM scratch\n\nFROBNICATE\n")
    with pytest.raises(InvalidInput, match=":2: COPY does not take the flag"):
        parse("FROM scratch\nCOPY --bogus=1 a b\n")
    with pytest.raises(InvalidInput, match=":2: CMD: malformed JSON"):
        parse('FROM scratch\nCMD ["a", 1]\n')
    with pytest.raises(InvalidInput, match=":2: RUN: heredoc <<EOF is not terminated"):
        parse("FROM scratch\nRUN <<EOF\nx\nEOF \n")


def test_expand() -> None:
    env = {"A": "x", "E": ""}
    assert expand("$A ${A} ${B:-d} ${A:+set} ${E:-empty} \\$A", env) == "x x d set empty $A"


def test_ignore_rules() -> None:
    ignore = parse_ignore("# c\n**/*.key\nbuild\n!build/keep.txt\n*.tmp\n")
    assert ignore.excluded("a/b/c.key") and ignore.excluded("x.key")
    assert ignore.excluded("build/out.o") and not ignore.excluded("build/keep.txt")
    assert ignore.excluded("x.tmp") and not ignore.excluded("dir/x.tmp")


def test_metadata_instructions() -> None:
    cfg = empty_config()
    for instr in parse_changes(
        [
            'ENV PATH=/bin HOME="/root dir"',
            "WORKDIR /srv",
            "WORKDIR app",
            'ENTRYPOINT ["/e"]',
            "CMD run now",
            "EXPOSE 80 53/udp",
            "VOLUME /data",
            "USER 1000:1000",
            "HEALTHCHECK --interval=1m30s --timeout=3s CMD curl -f http://x/ || exit 1",
            "STOPSIGNAL SIGTERM",
            "LABEL a=b",
        ]
    ):
        cfg = apply_metadata(cfg, instr, {})
    c = cfg["config"]
    assert c["Env"] == ["PATH=/bin", "HOME=/root dir"]
    assert c["WorkingDir"] == "/srv/app" and c["Entrypoint"] == ["/e"]
    assert c["Cmd"] == ["/bin/sh", "-c", "run now"]
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}} and c["Volumes"] == {"/data": {}}
    assert c["Healthcheck"] == {
        "Test": ["CMD-SHELL", "curl -f http://x/ || exit 1"],
        "Interval": 90_000_000_000,
        "Timeout": 3_000_000_000,
    }
    with pytest.raises(InvalidInput):
        parse_changes(["RUN echo no"])
    with pytest.raises(InvalidInput, match="invalid port"):
        apply_metadata(cfg, parse_changes(["EXPOSE 99999"])[0], {})


def _record(digest: str, layer: str) -> ImageRecord:
    return ImageRecord(
        digest,
        mt.OCI_MANIFEST,
        "sha256:" + "c" * 64,
        [{"digest": layer, "size": 1, "media_type": mt.OCI_LAYER, "diff_id": layer, "chain_id": layer}],
    )


def test_prune_plan_keeps_tagged_used_and_shared() -> None:
    a, b, c = ("sha256:" + ch * 64 for ch in "123")
    la, lb = "sha256:" + "4" * 64, "sha256:" + "5" * 64
    observed = gc.Observed(
        images=[_record(a, la), _record(b, lb), _record(c, la)],
        tags={"localhost/x:latest": a},
        uses={"container-1": {"images": [b], "layers": []}},
        blobs=sorted([a, b, c, la, lb, "sha256:" + "c" * 64, "sha256:" + "9" * 64]),
        layers=[la, lb, "sha256:" + "8" * 64],
        cache={},
        tmp=["work-1"],
    )
    kinds = {(x.kind, x.target) for x in gc.plan_prune(observed)}
    assert kinds == {
        ("remove-image", c),
        ("remove-tmp", "work-1"),
        ("remove-layer", "sha256:" + "8" * 64),
        ("remove-blob", c),
        ("remove-blob", "sha256:" + "9" * 64),
    }
    everything = {(x.kind, x.target) for x in gc.plan_prune(observed, all_images=True)}
    assert ("remove-image", a) in everything and ("remove-image", b) not in everything
