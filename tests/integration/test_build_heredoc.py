"""Containerfile heredocs, ADD of a URL and the build cache, on a real host.

Heredoc RUN steps really run in step containers (a `#!` script through its read-only bind at
/dev/pipes); ADD fetches from an HTTP server this test runs on the machine, on the lab's gateway
address (nothing leaves the machine); removing an unrelated image keeps the cache of every stage,
which only `image prune --build-cache` removes.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from labkit import Lab, berth
from rootfs import ROOTFS, build_rootfs

pytestmark = pytest.mark.lab

CTX = "/var/lib/berth/ctx-heredoc"
STORE = "/var/lib/berth/images"
MODIFIED = 1_650_000_000

HEREDOCS = """\
FROM hdbase
ARG WHO=world
ENV GREETING=hello
RUN <<EOF
echo "$GREETING $WHO" > /simple
mkdir -p /srv
EOF
RUN <<-EOF sh
\techo tabbed > /chomped
\tEOF
RUN cat <<'EOF' > /literal && cat <<EOF2 > /expanded
$GREETING
EOF
$GREETING
EOF2
RUN <<EOF
#!/bin/sh
echo "script $0" > /shebang
EOF
COPY <<EOF /etc/motd
Hi $WHO
EOF
COPY --chmod=0755 --chown=app <<"a.sh" <<b.txt /srv/
echo "$WHO"
a.sh
b is $WHO
b.txt
"""


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[str]:
    h = lab.hosts[0]
    build_rootfs(lab, h)
    lab.run(h, ["sh", "-c", f"mkdir -p {CTX} && tar -C {ROOTFS} -cf /var/lib/berth/hdbase.tar ."])
    lab.berth(h, "image", "import", "-t", "hdbase", "/var/lib/berth/hdbase.tar")
    yield h
    lab.run(h, ["sh", "-c", "berth image rm hdbase; berth image prune --build-cache; true"], check=False)
    lab.berth(h, "image", "verify")


class Server:
    """Files over HTTP on the lab's gateway address, with Last-Modified (304 to an If-Modified-Since
    not older, as a web server answers); counts the requests and the bodies sent."""

    def __init__(self, address: str) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.bodies = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                since = self.headers.get("If-Modified-Since")
                if since and email.utils.parsedate_to_datetime(since).timestamp() >= MODIFIED:
                    self.send_response(304)
                    self.end_headers()
                    return
                server.bodies += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Last-Modified", email.utils.formatdate(MODIFIED, usegmt=True))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((address, 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{address}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(lab: Lab) -> Iterator[Server]:
    s = Server(berth("lab", "status", "--name", lab.name)["data"]["gateway"])
    try:
        yield s
    finally:
        s.close()


def write(lab: Lab, host: str, text: str, ctx: str = CTX) -> None:
    lab.run(host, ["sh", "-c", f"mkdir -p {ctx} && cat > {ctx}/Containerfile"], input=text)


def in_image(lab: Lab, host: str, image: str, script: str) -> list[str]:
    return lab.run(host, ["berth", "run", "--rm", image, "sh", "-c", script]).stdout.splitlines()


def uncached(out: dict[str, Any]) -> list[int]:
    return [
        s["line"] for s in out["data"]["steps"] if not s["cached"] and not s["instruction"].startswith("FROM")
    ]


def store_state(lab: Lab, host: str) -> tuple[Any, ...]:
    images = lab.berth(host, "image", "ls")["data"]["images"]
    blobs = lab.run(host, ["sh", "-c", f"ls {STORE}/blobs/sha256 {STORE}/layers; ls -A {STORE}/tmp || true"])
    return sorted((i["digest"], tuple(i["tags"])) for i in images), blobs.stdout


def test_heredocs_run_in_steps_and_copy_writes_files(lab: Lab, host: str) -> None:
    write(lab, host, HEREDOCS)
    try:
        lab.berth(host, "image", "build", "-t", "heredoc:1", CTX)
        out = in_image(
            lab,
            host,
            "heredoc:1",
            "cat /simple /chomped /literal /expanded /shebang /etc/motd /srv/a.sh /srv/b.txt; "
            "stat -c '%a %u' /srv/a.sh /srv/b.txt /etc/motd",
        )
        assert out == [
            "hello world",  # the script ran in the shell, with the ARG and ENV of the step
            "tabbed",  # `<<-EOF sh`: the shell read the heredoc and stripped the tabs
            "$GREETING",  # quoted: the shell did not expand
            "hello",
            "script /dev/pipes/EOF",  # `#!`: run as a file, as BuildKit does
            "Hi world",  # COPY expands the build's ARGs
            'echo "$WHO"',  # ... except in a quoted heredoc
            "b is world",
            "755 1000",
            "755 1000",
            "644 0",
        ]
        again = lab.berth(host, "image", "build", "-t", "heredoc:1", CTX)
        assert uncached(again) == []
        write(lab, host, HEREDOCS.replace("b is", "B is"))
        assert uncached(lab.berth(host, "image", "build", "-t", "heredoc:2", CTX)) == [23]
        # No step container, unit or bind is left behind.
        units = lab.run(host, ["systemctl", "list-units", "--all", "--plain", "--no-legend", "berth-build-*"])
        assert units.stdout.strip() == ""
        assert lab.run(host, ["sh", "-c", "ls /var/lib/berth/containers | grep build- || true"]).stdout == ""
    finally:
        lab.run(host, ["sh", "-c", "berth image rm heredoc:1 heredoc:2; true"], check=False)


def test_add_fetches_urls_and_unpacks_local_tars(lab: Lab, host: str, server: Server) -> None:
    body = b"fetched over http\n"
    server.files["/files/data.txt"] = body
    sha = "sha256:" + hashlib.sha256(body).hexdigest()
    lab.run(host, ["sh", "-c", f"mkdir -p {CTX}/p/inner && echo inner > {CTX}/p/inner/file && "
                   f"tar -C {CTX}/p -czf {CTX}/pack.tar.gz inner"])  # fmt: skip
    write(
        lab,
        host,
        "FROM hdbase\n"
        f"ADD {server.url}/files/data.txt /fetched/\n"
        f"ADD --checksum={sha} --chmod=0640 --chown=app:app {server.url}/files/data.txt /fetched/pinned\n"
        "ADD pack.tar.gz /unpacked\n",
    )
    try:
        lab.berth(host, "image", "build", "-t", "added:1", CTX)
        out = in_image(
            lab,
            host,
            "added:1",
            "stat -c '%a %u %g %Y' /fetched/data.txt /fetched/pinned; "
            "cat /fetched/pinned /unpacked/inner/file",
        )
        # 0600 for a download (docker's rule), the mtime from Last-Modified.
        assert out == [f"600 0 0 {MODIFIED}", f"640 1000 1000 {MODIFIED}", "fetched over http", "inner"]
        assert len(server.requests) == 2 and server.bodies == 2
        # A rebuild asks whether the unpinned URL changed (304: no download); the pinned one not at all.
        assert uncached(lab.berth(host, "image", "build", "-t", "added:1", CTX)) == []
        assert len(server.requests) == 3 and server.bodies == 2

        before = store_state(lab, host)
        write(lab, host, f"FROM hdbase\nADD --checksum=sha256:{'0' * 64} {server.url}/files/data.txt /x\n")
        bad = lab.berth(host, "image", "build", "-t", "added:bad", CTX, check=False)
        assert bad["error"]["kind"] == "integrity-error", bad
        assert bad["error"]["message"].startswith(
            f"Containerfile:2: ADD: {server.url}/files/data.txt has checksum {sha}"
        )
        write(lab, host, f"FROM hdbase\nADD {server.url}/missing /x\n")
        missing = lab.berth(host, "image", "build", "-t", "added:bad", CTX, check=False)
        assert missing["error"]["kind"] == "fetch-failed" and "HTTP 404" in missing["error"]["message"]
        assert store_state(lab, host) == before
        lab.berth(host, "image", "verify")
    finally:
        lab.run(host, ["sh", "-c", "berth image rm added:1; true"], check=False)


STAGES = """\
FROM hdbase AS builder
RUN echo built > /artifact
FROM hdbase
COPY --from=builder /artifact /artifact
"""


def test_image_rm_keeps_the_build_cache_of_every_stage(lab: Lab, host: str) -> None:
    write(lab, host, STAGES)
    try:
        lab.berth(host, "image", "build", "-t", "cached:1", CTX)
        lab.berth(
            host, "image", "import", "-t", "unrelated", "-c", "LABEL unrelated=1", "/var/lib/berth/hdbase.tar"
        )
        removed = lab.berth(host, "image", "rm", "unrelated")
        assert [a["action"] for a in removed["actions"]] == ["remove-image", "remove-blob", "remove-blob"]
        assert uncached(lab.berth(host, "image", "build", "-t", "cached:1", CTX)) == []
        # A plain prune keeps the cache too; --build-cache removes it (and the builder's layer).
        plain = lab.berth(host, "image", "prune")
        assert "remove-cache" not in {a["action"] for a in plain["actions"]}
        pruned = lab.berth(host, "image", "prune", "--build-cache")
        kinds = {a["action"] for a in pruned["actions"]}
        assert {"remove-cache", "remove-layer", "remove-blob"} <= kinds
        assert in_image(lab, host, "cached:1", "cat /artifact") == ["built"]  # the image keeps its own
        lab.berth(host, "image", "verify")
        assert uncached(lab.berth(host, "image", "build", "-t", "cached:1", CTX)) == [2, 4]
    finally:
        lab.run(host, ["sh", "-c", "berth image rm cached:1 unrelated; true"], check=False)
