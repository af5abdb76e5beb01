"""Heredocs in Containerfiles (parsing, what RUN runs, the files COPY writes), ADD of a URL from an
HTTP server on loopback (mtime, modes, checksums, limits, cache), and the build cache as a user
of layers in prune plans. Whole builds run in a temporary store with a stand-in RUN step."""

from __future__ import annotations

import email.utils
import hashlib
import http.server
import io
import stat
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berth.errors import IntegrityError, InvalidInput, Timeout
from berth.images import gc
from berth.images.build import BuildOptions, BuildOutcome, build
from berth.images.containerfile import parse
from berth.images.fetch import FetchFailed, FetchLimits, redact
from berth.images.stagefs import StageTree
from berth.images.store import ImageRecord, ImageStore


# -- parsing -------------------------------------------------------------------------------------
def test_heredocs_parse_with_line_numbers_and_flags() -> None:
    text = (
        "FROM scratch\n"
        "RUN <<EOF\n"
        "echo $A \\\n"  # a continuation inside a heredoc is content
        "# not a comment\n"
        "\n"
        "EOF\n"
        "RUN <<-EOF sh\n"
        "\techo tabbed\n"
        "\tEOF\n"
        "RUN cat <<'EOF' > /a && 3<<EOF2 cat\n"
        "$X\n"
        "EOF\n"
        "$X\n"
        "EOF2\n"
        'COPY --chmod=0755 <<"a.sh" <<b.txt /srv/\n'
        "echo $WHO\n"
        "a.sh\n"
        "b\n"
        "b.txt\n"
        "RUN echo \"<<EOF\" '<<X' && cat <<<here\n"
        'RUN ["sh", "-c", "cat <<EOF"]\n'
        "CMD x\n"
    )
    instrs = parse(text)
    assert [(i.line, i.keyword) for i in instrs] == [
        (1, "FROM"), (2, "RUN"), (7, "RUN"), (10, "RUN"), (15, "COPY"), (20, "RUN"), (21, "RUN"), (22, "CMD"),
    ]  # fmt: skip
    simple, chomped, two, copy, quoted, json_form = instrs[1:7]
    assert simple.heredocs[0].content == "echo $A \\\n# not a comment\n\n" and simple.heredocs[0].expand
    assert chomped.args == "<<-EOF sh" and chomped.heredocs[0].chomp
    assert chomped.heredocs[0].content == "\techo tabbed\n" and chomped.heredocs[0].data == "echo tabbed\n"
    assert [(h.name, h.expand, h.fd) for h in two.heredocs] == [("EOF", False, None), ("EOF2", True, 3)]
    assert [(h.name, h.content, h.expand) for h in copy.heredocs] == [
        ("a.sh", "echo $WHO\n", False),
        ("b.txt", "b\n", True),
    ]
    assert quoted.heredocs == () and json_form.heredocs == ()
    # The instruction's text (history, cache key) carries the bodies.
    assert simple.text == "RUN <<EOF\necho $A \\\n# not a comment\n\nEOF"
    assert parse("FROM a\nRUN <<E\nx\nE\n")[1].text != parse("FROM a\nRUN <<E\ny\nE\n")[1].text


@pytest.mark.parametrize(
    "text, message",
    [
        ("FROM base\nRUN <<EOF\nx\n EOF\n", "Containerfile:2: RUN: heredoc <<EOF is not terminated"),
        ("FROM base\nRUN cat <<A <<B\nx\nA\ny\n", ":2: RUN: heredoc <<B is not terminated"),
        ("FROM base\nCOPY <<EOF\nx\nEOF\n", ":2: COPY: needs at least one source and a destination"),
        ("FROM base\nRUN <<'EOF\nx\nEOF\n", ':2: RUN: heredoc "<<\'EOF" has no usable name'),
    ],
)
def test_heredoc_errors_name_the_line(tmp_path: Path, text: str, message: str, env: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as caught:
        do_build(env, text)
    assert message in caught.value.message


# -- whole builds --------------------------------------------------------------------------------
class Server:
    """A loopback HTTP server: path -> (body, Last-Modified epoch or None), and an ETag per path
    if set in `etags`; answers conditional GETs with 304 as a web server does; counts requests
    (`answers`: path and status of each)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, int | None]] = {}
        self.etags: dict[str, str] = {}
        self.requests: list[str] = []
        self.answers: list[tuple[str, int]] = []
        self.delay = 0.0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                time.sleep(server.delay)
                if self.path not in server.files:
                    self.send_error(404)
                    return
                body, modified = server.files[self.path]
                etag = server.etags.get(self.path)
                since = self.headers.get("If-Modified-Since")
                if (etag is not None and self.headers.get("If-None-Match") == etag) or (
                    etag is None and modified is not None and since is not None
                    and email.utils.parsedate_to_datetime(since).timestamp() >= modified
                ):  # fmt: skip
                    server.answers.append((self.path, 304))
                    self.send_response(304)
                    self.end_headers()
                    return
                server.answers.append((self.path, 200))
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                if modified is not None:
                    self.send_header("Last-Modified", email.utils.formatdate(modified, usegmt=True))
                if etag is not None:
                    self.send_header("ETag", etag)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except ConnectionError:  # the client gave up (the timeout case)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    try:
        yield s
    finally:
        s.close()


def do_build(env: dict[str, Any], text: str, **kw: Any) -> BuildOutcome:
    (env["ctx"] / "Containerfile").write_text(text)
    return build(env["store"], BuildOptions(context=env["ctx"], **kw), run_step=env["run"])


def files_of(store: ImageStore, ref: str) -> dict[str, tuple[str, int, int, int, int]]:
    """Regular files of the image: path -> (text, mode, uid, gid, mtime)."""
    record = store.resolve(ref)
    tree = StageTree([store.layer_dir(x["chain_id"]) for x in record.layers])
    out = {}

    def walk(path: str) -> None:
        for name in tree.listdir(path):
            child = f"{path.rstrip('/')}/{name}"
            st = tree.lstat(child)
            assert st is not None
            if stat.S_ISDIR(st.st_mode):
                walk(child)
            elif stat.S_ISREG(st.st_mode):
                text = tree.read_text(child) or ""
                out[child] = (text, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime))

    walk("/")
    return out


def store_state(store: ImageStore) -> tuple[Any, ...]:
    return (
        {r.digest for r in store.images()},
        store.tags(),
        store.blobs(),
        store.layers(),
        store.tmp_leftovers(),
    )


HEREDOCS = """\
FROM base
ARG WHO=world
ENV GREETING=hello
RUN <<EOF
echo "$GREETING $WHO" > /simple
EOF
RUN <<-EOF sh
\techo tabbed
\tEOF
RUN <<EOF
#!/bin/sh
echo shebang
EOF
COPY <<EOF /etc/motd
Hi $WHO, \\$WHO
EOF
COPY --chmod=0755 --chown=app <<"a.sh" <<-b.txt /srv/
echo $WHO
a.sh
\tb is $WHO
\tb.txt
"""


def test_run_and_copy_heredocs(env: dict[str, Any]) -> None:
    store: ImageStore = env["store"]
    first = do_build(env, HEREDOCS, tags=["hd:1"])
    calls = env["run"].calls
    assert calls[0][0] == ["/bin/sh", "-c", 'echo "$GREETING $WHO" > /simple\n'] and calls[0][1] == []
    assert calls[0][2]["WHO"] == "world"  # ARGs reach the step's environment, the shell expands
    # Not a lone heredoc: the line goes to the shell with its body, for the shell to read.
    assert calls[1][0] == ["/bin/sh", "-c", "<<-EOF sh\n\techo tabbed\nEOF"]
    # A lone heredoc with a shebang is a script file, bound read-only and run as the program.
    assert calls[2][0] == ["/dev/pipes/EOF"] and calls[2][1][0][1] == "/dev/pipes"
    assert env["run"].scripts["/dev/pipes/EOF"] == ("#!/bin/sh\necho shebang\n", 0o755)
    files = files_of(store, "hd:1")
    assert files["/etc/motd"][:4] == ("Hi world, $WHO\n", 0o644, 0, 0)
    assert files["/srv/a.sh"][:4] == ("echo $WHO\n", 0o755, 1000, 1000)  # quoted: not expanded
    assert files["/srv/b.txt"][:4] == ("b is world\n", 0o755, 1000, 1000)  # `<<-`: tabs stripped

    again = do_build(env, HEREDOCS, tags=["hd:1"])
    assert again.digest == first.digest and len(calls) == 3
    assert all(s["cached"] for s in again.steps if not s["instruction"].startswith("FROM"))
    # The body is part of the cache key: a changed heredoc reruns its step, not the ones before.
    changed = do_build(env, HEREDOCS.replace("echo shebang", "echo changed"))
    assert [s["line"] for s in changed.steps if not s["cached"]][:2] == [1, 10]
    assert env["run"].scripts["/dev/pipes/EOF"][0] == "#!/bin/sh\necho changed\n"
    changed = do_build(env, HEREDOCS.replace("\tb is", "\tB is"))
    assert [s["line"] for s in changed.steps if not s["cached"]] == [1, 17]
    assert do_build(env, HEREDOCS, build_args={"WHO": "you"}).steps[4]["cached"] is False


def test_copy_heredoc_errors_leave_nothing(env: dict[str, Any]) -> None:
    store: ImageStore = env["store"]
    before = store_state(store)
    with pytest.raises(
        InvalidInput, match=":2: COPY: cannot put the file in the directory /d/: a file cannot"
    ):
        do_build(env, "FROM base\nCOPY <<a/b /d/\nx\na/b\n", tags=["bad:1"])
    with pytest.raises(InvalidInput, match=":3: COPY: a heredoc cannot be a source together with --from"):
        do_build(env, "FROM base AS a\nFROM base\nCOPY --from=a <<EOF /x\nx\nEOF\n", tags=["bad:1"])
    assert store_state(store) == before


# -- ADD of a URL --------------------------------------------------------------------------------
MODIFIED = 1_650_000_000


def test_add_url_mtime_modes_checksum_and_cache(env: dict[str, Any], server: Server) -> None:
    store: ImageStore = env["store"]
    body = b"fetched data\n"
    server.files["/dir/data.txt"] = (body, MODIFIED)
    sha = "sha256:" + hashlib.sha256(body).hexdigest()
    text = (
        "FROM base\n"
        f"ADD {server.url}/dir/data.txt /fetched/\n"
        f"ADD --checksum={sha} --chmod=0640 --chown=app:app {server.url}/dir/data.txt /fetched/pinned\n"
        f"ADD --checksum=sha512:{hashlib.sha512(body).hexdigest()} {server.url}/dir/data.txt /sha512\n"
    )
    do_build(env, text, tags=["url:1"])
    files = files_of(store, "url:1")
    assert files["/fetched/data.txt"] == ("fetched data\n", 0o600, 0, 0, MODIFIED)
    assert files["/fetched/pinned"] == ("fetched data\n", 0o640, 1000, 1000, MODIFIED)
    assert files["/sha512"][0] == "fetched data\n"
    assert len(server.requests) == 3

    # Unpinned: fetched again, and the same content is a cache hit. Pinned: not fetched at all.
    again = do_build(env, text, tags=["url:1"])
    assert all(s["cached"] for s in again.steps[1:]) and len(server.requests) == 4
    server.files["/dir/data.txt"] = (b"new data\n", MODIFIED + 60)
    changed = do_build(env, text.split("ADD --checksum")[0], tags=["url:2"])
    assert not changed.steps[1]["cached"] and files_of(store, "url:2")["/fetched/data.txt"][0] == "new data\n"

    # Reproducible builds take the fixed epoch, not the server's date.
    do_build(env, text.split("ADD --checksum")[0], tags=["url:3"], epoch=1_000)
    assert files_of(store, "url:3")["/fetched/data.txt"][4] == 1_000


def test_add_url_is_revalidated_with_the_servers_etag(env: dict[str, Any], server: Server) -> None:
    """As BuildKit: an unchanged file (304 to the ETag of the last download) is no download and
    a cached step; a changed one is downloaded again; the cache file holds no credential."""
    store: ImageStore = env["store"]
    server.files["/app.bin"] = (b"version 1\n", None)
    server.etags["/app.bin"] = '"v1"'
    url = server.url.replace("http://", "http://deploy:hunter2@") + "/app.bin"
    text = f"FROM base\nADD {url} /app.bin\n"
    do_build(env, text, tags=["etag:1"])
    assert server.answers == [("/app.bin", 200)]
    again = do_build(env, text, tags=["etag:1"])
    assert again.steps[1]["cached"] and server.answers[1:] == [("/app.bin", 304)]  # no body
    server.files["/app.bin"] = (b"version 2\n", None)
    server.etags["/app.bin"] = '"v2"'
    changed = do_build(env, text, tags=["etag:2"])
    assert not changed.steps[1]["cached"] and server.answers[2:] == [("/app.bin", 200), ("/app.bin", 200)]
    assert files_of(store, "etag:2")["/app.bin"][0] == "version 2\n"
    assert do_build(env, text, tags=["etag:2"]).steps[1]["cached"] and server.answers[-1] == ("/app.bin", 304)
    leaked = [p for p in store.root.rglob("*") if p.is_file() and b"hunter2" in p.read_bytes()]
    assert leaked == []
    # Unchanged, but the cached step is gone: downloaded again (not trusted blindly).
    with store.locked():
        for key in store.cache_keys():
            if "layers" in (store.cache_get(key) or {}):
                store.remove_cache(key)
    rebuilt = do_build(env, text, tags=["etag:3"])
    assert not rebuilt.steps[1]["cached"] and server.answers[-2:] == [("/app.bin", 304), ("/app.bin", 200)]
    assert files_of(store, "etag:3")["/app.bin"][0] == "version 2\n"


def test_add_url_without_validators_is_downloaded_every_time(env: dict[str, Any], server: Server) -> None:
    server.files["/plain"] = (b"no etag, no date\n", None)
    text = f"FROM base\nADD {server.url}/plain /plain\n"
    do_build(env, text, tags=["plain:1"])
    again = do_build(env, text, tags=["plain:1"])
    assert again.steps[1]["cached"] and server.answers == [("/plain", 200), ("/plain", 200)]


def test_add_url_failures_leave_nothing(env: dict[str, Any], server: Server) -> None:
    store: ImageStore = env["store"]
    server.files["/f"] = (b"x" * 100, None)
    do_build(env, "FROM base\nRUN true\n", tags=["keep:1"])  # something in the store already
    before = store_state(store)
    wrong = "sha256:" + "0" * 64
    cases: list[tuple[str, type[Exception], str, dict[str, Any]]] = [
        (f"ADD --checksum={wrong} {server.url}/f /f", IntegrityError, "--checksum says " + wrong, {}),
        (f"ADD --checksum=md5:abc {server.url}/f /f", InvalidInput, "invalid --checksum 'md5:abc'", {}),
        (f"ADD --checksum={wrong} a b /f", InvalidInput, "--checksum needs exactly one source", {}),
        (f"ADD {server.url}/missing /f", FetchFailed, "failed: HTTP 404", {}),
        (f"ADD {server.url}/f /f", FetchFailed, "is 100 bytes, more than the limit of 10 bytes",
         {"fetch_limits": FetchLimits(max_bytes=10)}),
        (f"ADD {server.url}/ /d/", InvalidInput, "the URL has no file name", {}),
        (f"COPY {server.url}/f /f", InvalidInput, "only ADD (without --from) fetches URLs", {}),
        ("ADD ftp://127.0.0.1/f /f", Exception, "only http:// and https:// URLs", {}),
        (f"ADD http://user:secret@{server.url[7:]}/missing /f", FetchFailed, "http://***@127.0.0.1", {}),
    ]  # fmt: skip
    server.files["/"] = (b"index", None)
    for line, kind, message, kw in cases:
        with pytest.raises(kind) as caught:
            do_build(env, f"FROM base\n{line}\n", tags=["bad:1"], **kw)
        msg = getattr(caught.value, "message", str(caught.value))
        assert message in msg and msg.startswith("Containerfile:2: "), msg
        assert "secret" not in msg
        assert store_state(store) == before, line
    server.delay = 1.5
    with pytest.raises(Timeout, match=r"Containerfile:2: ADD: fetching .* no answer within 0.5 s"):
        do_build(env, f"FROM base\nADD {server.url}/f /f\n", fetch_limits=FetchLimits(timeout=0.5))
    assert store_state(store) == before
    assert redact("https://u:p@h.example/x") == "https://***@h.example/x"


def test_add_local_tar_is_unpacked_and_a_fetched_one_is_not(env: dict[str, Any], server: Server) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("inner/file")
        info.size = 6
        tf.addfile(info, io.BytesIO(b"inner\n"))
    (env["ctx"] / "pack.tar.gz").write_bytes(buf.getvalue())
    server.files["/pack.tar.gz"] = (buf.getvalue(), None)
    do_build(
        env, f"FROM base\nADD pack.tar.gz /local/\nADD {server.url}/pack.tar.gz /remote/\n", tags=["t:1"]
    )
    files = files_of(env["store"], "t:1")
    assert files["/local/inner/file"][0] == "inner\n" and "/remote/pack.tar.gz" in files


# -- the build cache in prune plans ----------------------------------------------------------------
def _record(digest: str, layer: str) -> ImageRecord:
    from berth.images import mediatypes as mt

    return ImageRecord(
        digest,
        mt.OCI_MANIFEST,
        "sha256:" + "c" * 64,
        [{"digest": layer, "size": 1, "media_type": mt.OCI_LAYER, "diff_id": layer, "chain_id": layer}],
    )


def test_build_cache_keeps_its_layers_until_asked() -> None:
    img, base, stage, gone = ("sha256:" + ch * 64 for ch in "1234")
    key_ok, key_broken = "sha256:" + "a" * 64, "sha256:" + "b" * 64

    def layer(d: str) -> dict[str, str]:
        return {"digest": d, "chain_id": d}

    observed = gc.Observed(
        images=[_record(img, base)],
        tags={"localhost/x:latest": img},
        uses={},
        blobs=sorted([img, base, stage, "sha256:" + "c" * 64]),
        layers=[base, stage],
        # an intermediate stage's step (only the cache uses its layer), and one whose layer is gone
        cache={key_ok: {"layers": [layer(base), layer(stage)]}, key_broken: {"layers": [layer(gone)]}},
        tmp=[],
    )
    after_rm = {(a.kind, a.target) for a in gc.plan_prune(observed, images=False)}
    assert after_rm == {("remove-cache", key_broken)}
    plain = {(a.kind, a.target) for a in gc.plan_prune(observed)}
    assert plain == after_rm
    for kw in ({"build_cache": True}, {"all_images": True}):
        wide = {(a.kind, a.target) for a in gc.plan_prune(observed, **kw)}
        assert {("remove-cache", key_ok), ("remove-layer", stage), ("remove-blob", stage)} <= wide
