"""Multi-stage builds on a real host: COPY --from a stage that RUN built, the image being the last
stage only, the cache across stages, --target, and refused Containerfiles leaving nothing behind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from labkit import Lab
from rootfs import ROOTFS, build_rootfs

pytestmark = pytest.mark.lab

CTX = "/var/lib/berth/ctx-stages"
CONTAINERFILE = """\
FROM stbase AS builder
RUN mkdir -p /out/sub && echo {word} > /out/result && ln -s result /out/link && echo junk > /builder-only
FROM stbase
COPY --from=0 /out /out
CMD ["cat", "/out/result"]
"""
CHECK = "cat /out/result /out/link; test -e /builder-only && echo has-builder-file || echo no-builder-file"


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[str]:
    h = lab.hosts[0]
    build_rootfs(lab, h)
    lab.run(h, ["sh", "-c", f"mkdir -p {CTX} && tar -C {ROOTFS} -cf /var/lib/berth/stbase.tar ."])
    lab.berth(h, "image", "import", "-t", "stbase", "/var/lib/berth/stbase.tar")
    yield h
    lab.berth(h, "image", "rm", "stbase")
    lab.berth(h, "image", "verify")


def write(lab: Lab, host: str, text: str, ctx: str = CTX) -> None:
    lab.run(host, ["sh", "-c", f"mkdir -p {ctx} && cat > {ctx}/Containerfile"], input=text)


def run_image(lab: Lab, host: str, image: str) -> list[str]:
    return lab.run(host, ["berth", "run", "--rm", image, "sh", "-c", CHECK]).stdout.split()


def leftovers(lab: Lab, host: str) -> tuple[set[str], dict[str, Any], str, str]:
    images = lab.berth(host, "image", "ls")["data"]["images"]
    containers = lab.run(host, ["sh", "-c", "ls /var/lib/berth/containers | grep build- || true"]).stdout
    units = lab.run(
        host, ["systemctl", "list-units", "--all", "--plain", "--no-legend", "berth-build-*"]
    ).stdout.strip()
    return {i["digest"] for i in images}, {i["digest"]: i.get("tags", []) for i in images}, containers, units


def test_two_stages_cache_invalidation_and_target(lab: Lab, host: str) -> None:
    write(lab, host, CONTAINERFILE.format(word="first"))
    try:
        built = lab.berth(host, "image", "build", "-t", "stages:1", CTX)
        assert [s["stage"] for s in built["data"]["steps"]] == [0, 0, 1, 1, 1]
        assert run_image(lab, host, "stages:1") == ["first", "first", "no-builder-file"]
        # The last stage only: the base layer and the COPY's.
        base = lab.berth(host, "image", "inspect", "stbase")["data"]
        image = lab.berth(host, "image", "inspect", "stages:1")["data"]
        assert len(image["layers"]) == len(base["layers"]) + 1

        again = lab.berth(host, "image", "build", "-t", "stages:1", CTX)
        assert again["data"]["digest"] == built["data"]["digest"]
        assert all(s["cached"] for s in again["data"]["steps"] if not s["instruction"].startswith("FROM"))

        write(lab, host, CONTAINERFILE.format(word="second"))
        changed = lab.berth(host, "image", "build", "-t", "stages:2", CTX)
        cached = {s["line"]: s["cached"] for s in changed["data"]["steps"]}
        assert cached[2] is False and cached[4] is False and cached[5] is False
        assert run_image(lab, host, "stages:2") == ["second", "second", "no-builder-file"]

        target = lab.berth(host, "image", "build", "-t", "stages:builder", "--target", "Builder", CTX)
        assert {s["stage"] for s in target["data"]["steps"]} == {0}
        assert all(s["cached"] for s in target["data"]["steps"] if not s["instruction"].startswith("FROM"))
        assert run_image(lab, host, "stages:builder") == ["second", "second", "has-builder-file"]
        # No step container is left behind.
        assert leftovers(lab, host)[2:] == ("", "")
    finally:
        lab.run(host, ["sh", "-c", "berth image rm stages:1 stages:2 stages:builder; true"], check=False)
    lab.berth(host, "image", "verify")


BAD = [
    (
        "unknown-index",
        "FROM stbase\nCOPY --from=3 /etc /x\n",
        [],
        "Containerfile:2: COPY: --from=3: there is no stage 3",
    ),
    (
        "itself",
        "FROM stbase AS a\nFROM stbase AS b\nCOPY --from=B /etc /x\n",
        [],
        ":3: COPY: --from=B is this stage itself",
    ),
    (
        "later",
        "FROM stbase AS a\nCOPY --from=b /etc /x\nFROM stbase AS b\n",
        [],
        ":2: COPY: --from=b is stage 1 (line 3), which comes later",
    ),
    ("later-from", "FROM b AS a\nFROM stbase AS b\n", [], ":1: FROM: 'b' is stage 1, which comes later"),
    ("duplicate", "FROM stbase AS a\nFROM stbase AS A\n", [], ":2: FROM: duplicate stage name 'a'"),
    ("target", "FROM stbase AS a\nFROM stbase\n", ["--target", "nope"], "--target 'nope' names no stage"),
    (
        "missing-after-run",
        "FROM stbase AS a\nRUN echo hi > /made\nFROM stbase\nCOPY --from=a /missing /x\n",
        [],
        ":4: COPY: source '/missing' not found in stage 0 (a)",
    ),
]


@pytest.mark.parametrize("text, extra, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_refused_containerfiles_leave_nothing(
    lab: Lab, host: str, text: str, extra: list[str], message: str
) -> None:
    ctx = "/var/lib/berth/ctx-stages-bad"
    write(lab, host, text, ctx)
    before = leftovers(lab, host)
    out = lab.berth(host, "image", "build", "-t", "bad-stages:1", *extra, ctx, check=False)
    assert out["exit_code"] == 2 and out["error"]["kind"] == "invalid-input", out
    assert message in out["error"]["message"], out["error"]["message"]
    after = leftovers(lab, host)
    assert after[0] == before[0] and after[1] == before[1] and after[2:] == ("", "")
    assert all("localhost/bad-stages:1" not in tags for tags in after[1].values())
