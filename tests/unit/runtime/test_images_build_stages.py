"""Multi-stage builds: the stage plan (names, references, ARG scopes, --target), reading a stage's
merged layers for COPY --from, and whole builds in a temporary store with a stand-in RUN step."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from berth.errors import InvalidInput, NotFound
from berth.images import build as build_mod
from berth.images.build import BuildOptions, BuildOutcome, build
from berth.images.containerfile import parse
from berth.images.extract import OPAQUE_XATTR
from berth.images.rootfs import import_rootfs
from berth.images.stagefs import StageTree
from berth.images.stages import Source, plan
from berth.images.store import ImageStore


def plan_of(text: str, target: str | None = None, **build_args: str) -> Any:
    return plan(parse(text), build_args, target)


# -- the plan ------------------------------------------------------------------------------------
def test_stages_names_and_references() -> None:
    p = plan_of(
        "ARG BASE=alpine\n"
        "FROM $BASE AS Build\n"
        "RUN make\n"
        "FROM build AS test\n"
        "RUN make test\n"
        "FROM scratch\n"
        "COPY --from=BUILD /out /out\n"
        "COPY --from=0 /a /a\n"
        "COPY --from=docker.io/library/busybox /bin/busybox /bin/\n"
    )
    assert [(s.index, s.name) for s in p.stages] == [(0, "build"), (1, "test"), (2, None)]
    assert p.stages[0].base == Source(image="alpine")  # the global ARG, used in FROM
    assert p.stages[1].base == Source(stage=0)  # names are case-insensitive
    assert p.stages[2].base == Source(image="scratch")
    assert p.stages[2].copies == {
        0: Source(stage=0),
        1: Source(stage=0),
        2: Source(image="docker.io/library/busybox"),
    }
    # The last stage is the target; `test` is not needed by it, so it is not built.
    assert p.target == 2 and p.needed == [0, 2]
    assert plan_of("FROM a AS one\nFROM one AS two\nFROM b\n", target="TWO").needed == [0, 1]
    assert plan_of("ARG BASE=alpine\nFROM $BASE\n", BASE="debian").stages[0].base == Source(image="debian")


def test_a_stage_named_like_its_image_builds_on_the_image() -> None:
    """As in docker: `FROM alpine AS alpine` cannot mean the stage itself."""
    p = plan_of("FROM alpine AS alpine\nFROM alpine\n")
    assert p.stages[0].base == Source(image="alpine") and p.stages[1].base == Source(stage=0)


@pytest.mark.parametrize(
    "text, target, message",
    [
        (
            "FROM a AS x\nFROM b AS X\n",
            None,
            "Containerfile:2: FROM: duplicate stage name 'x': stage 0 (line 1)",
        ),
        ("FROM a AS x\nCOPY --from=x /a /b\n", None, ":2: COPY: --from=x is this stage itself"),
        ("FROM a\nCOPY --from=0 /a /b\n", None, ":2: COPY: --from=0 is this stage itself"),
        (
            "FROM a\nCOPY --from=1 /a /b\nFROM b\n",
            None,
            ":2: COPY: --from=1 is stage 1 (line 3), which comes later",
        ),
        (
            "FROM a\nCOPY --from=later /a /b\nFROM b AS later\n",
            None,
            ":2: COPY: --from=later is stage 1 (line 3), which comes later",
        ),
        ("FROM a\nFROM b\nCOPY --from=5 /a /b\n", None, ":3: COPY: --from=5: there is no stage 5"),
        ("FROM later AS first\nFROM b AS later\n", None, ":1: FROM: 'later' is stage 1, which comes later"),
        ("FROM a AS 1st\n", None, ":1: FROM: invalid stage name '1st'"),
        ("FROM a AS x y\n", None, ":1: FROM: expected FROM IMAGE [AS NAME]"),
        (
            "FROM a AS one\nFROM b\n",
            "two",
            "--target 'two' names no stage of Containerfile (stages: 'one' (line 1))",
        ),
        ("FROM a\n", "x", "--target 'x' names no stage of Containerfile (stages: none is named)"),
        ("ARG A=1\nRUN true\n", None, "Containerfile:2: the first instruction must be FROM"),
    ],
)
def test_plan_errors_name_the_line(text: str, target: str | None, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        plan_of(text, target)
    assert message in caught.value.message


def test_a_later_stage_with_an_error_fails_even_with_an_earlier_target() -> None:
    with pytest.raises(InvalidInput, match=":4: COPY: --from=2"):
        plan_of("FROM a AS one\nFROM b\nFROM c\nCOPY --from=2 /x /y\n", target="one")


def test_arg_scopes() -> None:
    text = (
        "ARG V=global\nARG W=w-$V\n"
        "FROM base AS one\n"
        "ARG V\n"  # without a value: the global one
        "COPY --from=img-$V /a /b\n"
        "FROM base\n"
        "ARG V=own\n"  # a stage's own default wins over the global value
        "COPY --from=img-$V-$W /a /b\n"  # W was not declared in this stage: empty
    )
    p = plan_of(text)
    assert p.global_args == {"V": "global", "W": "w-global"}
    assert p.stages[0].copies[1] == Source(image="img-global")
    assert p.stages[1].copies[1] == Source(image="img-own-")
    p = plan_of(text, V="cli")  # a --build-arg wins everywhere
    assert p.global_args["W"] == "w-cli"
    assert p.stages[0].copies[1] == Source(image="img-cli")
    assert p.stages[1].copies[1] == Source(image="img-cli-")


# -- reading a stage's layers ----------------------------------------------------------------------
def _whiteout(path: Path) -> None:
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, 0)
    except PermissionError:
        pytest.skip("needs root (mknod) for overlay whiteouts")


def test_stage_tree_merges_layers_and_keeps_symlinks_inside(tmp_path: Path) -> None:
    low, up = tmp_path / "low", tmp_path / "up"
    for d in (low / "out" / "sub", low / "opq", low / "etc", up / "out", up / "opq"):
        d.mkdir(parents=True)
    (low / "out" / "a.txt").write_text("a")
    (low / "out" / "gone.txt").write_text("gone")
    (low / "out" / "sub" / "deep.txt").write_text("deep")
    (low / "opq" / "hidden").write_text("hidden")
    (low / "etc" / "hostname").write_text("stage-host\n")
    (up / "out" / "b.txt").write_text("b")
    (up / "out" / "host").symlink_to("/etc/hostname")  # absolute: the stage's /etc, not ours
    (up / "lnk").symlink_to("out")
    _whiteout(up / "out" / "gone.txt")
    try:
        os.setxattr(up / "opq", OPAQUE_XATTR, b"y")
    except OSError:
        pytest.skip("needs root for trusted.* xattrs")
    (up / "opq" / "new").write_text("new")
    tree = StageTree([low, up])
    assert tree.listdir("/out") == ["a.txt", "b.txt", "host", "sub"]
    assert tree.listdir("/opq") == ["new"]
    assert tree.listdir("/") == ["etc", "lnk", "opq", "out"]
    assert tree.match("/lnk/*.txt") == ["/out/a.txt", "/out/b.txt"]  # `*` stays in one directory
    assert tree.match("/out/gone.txt") == [] and tree.match("/nothing/*") == []
    assert tree.match("/out/host") == ["/etc/hostname"]  # followed, inside the view
    assert tree.read_text("/out/host") == "stage-host\n"
    assert tree.match("/lnk/../../..") == ["/"]

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tree.add_tree(tf, "/out", "/dest", None, None, 0, set(), {})
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        members = {m.name: m for m in tf.getmembers()}
        assert sorted(members) == ["dest/a.txt", "dest/b.txt", "dest/host", "dest/sub", "dest/sub/deep.txt"]
        assert members["dest/host"].issym() and members["dest/host"].linkname == "/etc/hostname"
        data = tf.extractfile(members["dest/sub/deep.txt"])
        assert data is not None and data.read() == b"deep"


# -- whole builds ----------------------------------------------------------------------------------
class FakeRun:
    """Stands in for a RUN container: `write PATH TEXT`, `link PATH TARGET`, `rm PATH`, `;`-separated,
    $NAME replaced from the step's environment. Records what ran."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def __call__(
        self, layers: list[Path], upper: Path, command: list[str], env: dict[str, str], *rest: Any
    ) -> None:
        script = command[-1]
        for key, value in sorted(env.items(), key=lambda kv: -len(kv[0])):
            script = script.replace(f"${key}", value)
        self.ran.append(script)
        for part in script.split(";"):
            op, path, *more = part.split(maxsplit=2)
            dest = upper / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if op == "write":
                dest.write_text(more[0] + "\n" if more else "\n")
                if os.geteuid() == 0:
                    os.chown(dest, 1000, 1000)
            elif op == "link":
                dest.symlink_to(more[0])
            elif op == "rm":
                _whiteout(dest)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # Never reap: a real reap would look at this machine's containers.
    monkeypatch.setattr(build_mod, "reap_orphaned_steps", lambda: ([], []))
    store = ImageStore(tmp_path / "store")
    base = tmp_path / "base.tar"
    with tarfile.open(base, "w") as tf:
        for name, data in (("etc/passwd", b"root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"),
                           ("etc/group", b"root:x:0:\napp:x:1000:\n"),
                           ("etc/os", b"base\n")):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    import_rootfs(store, base, ["base"], [])
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    return {"store": store, "ctx": ctx, "run": FakeRun()}


def do_build(env: dict[str, Any], text: str, **kw: Any) -> BuildOutcome:
    (env["ctx"] / "Containerfile").write_text(text)
    options = BuildOptions(context=env["ctx"], **kw)
    return build(env["store"], options, run_step=env["run"])


def files_of(store: ImageStore, ref: str) -> dict[str, Any]:
    """Path -> text, link target or 'dir', read from the image's merged layers."""
    record = store.resolve(ref)
    tree = StageTree([store.layer_dir(x["chain_id"]) for x in record.layers])
    out: dict[str, Any] = {}

    def walk(path: str) -> None:
        for name in tree.listdir(path):
            child = f"{path.rstrip('/')}/{name}"
            st = tree.lstat(child)
            assert st is not None
            if stat.S_ISDIR(st.st_mode):
                out[child] = "dir"
                walk(child)
            elif stat.S_ISLNK(st.st_mode):
                out[child] = ("link", os.readlink(tree.entry(child)))  # type: ignore[arg-type]
            else:
                out[child] = (tree.read_text(child), st.st_uid)

    walk("/")
    return out


TWO_STAGES = """\
FROM base AS builder
ARG V=1
RUN write /out/hello v$V; write /out/sub/deep x; link /out/abs /etc/os; write /scratch junk
RUN rm /scratch
FROM base
COPY --from=builder /out /out
COPY --from=0 /out/abs /os-copy
COPY --from=0 --chown=0:0 ["/out/hello", "/owned-by-root"]
CMD ["cat", "/out/hello"]
"""


def test_two_stages_copy_from_cache_and_target(env: dict[str, Any]) -> None:
    store: ImageStore = env["store"]
    first = do_build(env, TWO_STAGES, tags=["app:1"])
    files = files_of(store, "app:1")
    assert files["/out/hello"] == ("v1\n", 1000)  # ownership kept from the stage without --chown
    assert files["/owned-by-root"] == ("v1\n", 0)
    assert files["/out/sub/deep"] == ("x\n", 1000)
    assert files["/out/abs"] == ("link", "/etc/os")  # copied as a link
    assert files["/os-copy"] == ("base\n", 0)  # a followed source: the stage's /etc/os
    assert "/scratch" not in files
    # Only the last stage's layers: the base layer and one per COPY.
    record = store.resolve("app:1")
    base = store.resolve("base")
    assert len(record.layers) == 4 and record.layers[0]["digest"] == base.layers[0]["digest"]
    assert store.config(record)["config"]["Cmd"] == ["cat", "/out/hello"]
    assert [s["stage"] for s in first.steps] == [0, 0, 0, 1, 1, 1, 1, 1]

    again = do_build(env, TWO_STAGES, tags=["app:1"])
    assert again.digest == first.digest
    assert all(s["cached"] for s in again.steps if not s["instruction"].startswith("FROM"))
    assert len(env["run"].ran) == 2

    changed = do_build(env, TWO_STAGES, tags=["app:2"], build_args={"V": "2"})
    by_line = {s["line"]: s["cached"] for s in changed.steps}
    assert by_line[3] is False and by_line[6] is False  # stage 0's RUN, then the COPY --from
    assert files_of(store, "app:2")["/out/hello"] == ("v2\n", 1000)

    target = do_build(env, TWO_STAGES, tags=["builder:1"], target="BUILDER")
    assert all(s["stage"] == 0 for s in target.steps)
    files = files_of(store, "builder:1")
    assert files["/out/hello"] == ("v1\n", 1000) and "/scratch" not in files and "/os-copy" not in files


def test_copy_from_an_image_and_a_changed_image_invalidates(env: dict[str, Any], tmp_path: Path) -> None:
    text = "FROM scratch\nCOPY --from=base /etc/os /etc/\n"
    first = do_build(env, text, tags=["c:1"])
    assert files_of(env["store"], "c:1") == {"/etc": "dir", "/etc/os": ("base\n", 0)}
    assert do_build(env, text).steps[-1]["cached"]
    other = tmp_path / "other.tar"
    with tarfile.open(other, "w") as tf:
        info = tarfile.TarInfo("etc/os")
        info.size, info.mtime = 5, 1_700_000_000
        tf.addfile(info, io.BytesIO(b"base\n"))  # the same file, another image
    import_rootfs(env["store"], other, ["base"], ["LABEL x=y"])
    second = do_build(env, text, tags=["c:1"])
    assert not second.steps[-1]["cached"]  # another image: the copy is redone (to the same layer)
    layers = [env["store"].resolve(d).layers for d in (first.digest, second.digest)]
    assert layers[0] == layers[1]


def test_copy_from_never_reads_the_host(env: dict[str, Any]) -> None:
    text = "FROM base AS s\nRUN link /leak /etc/hostname\nFROM base\nCOPY --from=s /leak /leak\n"
    with pytest.raises(InvalidInput, match=r":4: COPY: source '/leak' not found in stage 0 \(s\)"):
        do_build(env, text, tags=["leak:1"])
    assert env["store"].find("leak:1") is None


def test_errors_leave_no_image_and_no_tag(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    store: ImageStore = env["store"]
    before = ({r.digest for r in store.images()}, store.tags())

    def no_pull(*args: Any, **kw: Any) -> Any:
        raise NotFound("manifest unknown")

    monkeypatch.setattr("berth.images.pull.pull", no_pull)
    with pytest.raises(InvalidInput) as caught:
        do_build(
            env, "FROM base AS builder\nRUN write /a a\nFROM base\nCOPY --from=buidler /a /a\n", tags=["x:1"]
        )
    msg = caught.value.message
    assert "Containerfile:4: COPY: --from=buidler: no stage of this Containerfile" in msg
    assert "stages: 0 (builder), 1" in msg and "manifest unknown" in msg
    assert env["run"].ran == []  # images are resolved before any step runs
    with pytest.raises(InvalidInput, match="Containerfile:1: FROM: base image 'nope' is neither local"):
        do_build(env, "FROM nope\n", tags=["x:1"])
    with pytest.raises(InvalidInput, match="--target 'nope' names no stage"):
        do_build(env, "FROM base AS a\n", tags=["x:1"], target="nope")
    with pytest.raises(InvalidInput, match=":3: COPY: --from=1 is this stage itself"):
        do_build(env, "FROM base\nFROM base\nCOPY --from=1 /a /a\n", tags=["x:1"])
    with pytest.raises(InvalidInput, match=r":4: COPY: source '/missing' not found in stage 0"):
        do_build(env, "FROM base\nRUN write /a a\nFROM base\nCOPY --from=0 /missing /a\n", tags=["x:1"])
    assert ({r.digest for r in store.images()}, store.tags()) == before
