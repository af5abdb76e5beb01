"""ADD of a git repository (BuildKit's syntax), from a real `git daemon` on loopback: the ref
resolved to a commit keys the cache (a cached step clones nothing), SUBDIR, --keep-git-dir,
deterministic mtimes, and refusals that name the line."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_images_heredoc_fetch import do_build, files_of

from berth.errors import BerthError, InvalidInput
from berth.images.gitsource import parse_git

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

GIT_ENV = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin"}  # fmt: skip


def git(repo: Path, *args: str, when: int = 1_700_000_000) -> str:
    stamp = {"GIT_AUTHOR_DATE": f"{when} +0000", "GIT_COMMITTER_DATE": f"{when} +0000"}
    out = subprocess.run(["git", "-C", str(repo), *args], env={**GIT_ENV, **stamp}, check=True,
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout.strip()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A repository served by `git daemon` on a loopback port: (git:// URL of it, its work tree)."""
    base = tmp_path / "served"
    repo = base / "app.git"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "src").mkdir()
    (repo / "src" / "main.sh").write_text("echo v1\n")
    (repo / "src" / "main.sh").chmod(0o755)
    (repo / "README").write_text("readme\n")
    (repo / "src" / "link").symlink_to("main.sh")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "v1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # In a session of its own: `git daemon` runs git-daemon as a child, which a kill of the
    # parent alone would leave behind; the whole group goes at the end.
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", f"--port={port}",
         f"--base-path={base}", str(base)],
        env=GIT_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/app.git", repo
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_add_a_repository_at_a_tag_with_a_subdir_and_the_cache(env: dict[str, Any], daemon: Any) -> None:
    url, repo = daemon
    text = f"FROM base\nADD {url}#v1:src /app/\nADD --keep-git-dir=true {url} /whole\n"
    built = do_build(env, text, tags=["git:1"])
    files = files_of(env["store"], "git:1")
    assert files["/app/main.sh"] == ("echo v1\n", 0o755, 0, 0, 1_700_000_000)
    assert "/app/README" not in files and "/whole/README" in files
    assert any(p.startswith("/whole/.git/") for p in files)  # kept on request
    # The same commit: both steps cached, nothing cloned (the daemon would be asked to upload).
    again = do_build(env, text, tags=["git:1"])
    assert all(s["cached"] for s in again.steps[1:]) and again.digest == built.digest
    # A new commit on main: the unpinned step takes it; the tag still names the old one.
    (repo / "README").write_text("changed\n")
    git(repo, "commit", "-q", "-am", "v2", when=1_700_000_100)
    moved = do_build(env, text, tags=["git:2"])
    assert moved.steps[1]["cached"] and not moved.steps[2]["cached"]
    assert files_of(env["store"], "git:2")["/whole/README"][0] == "changed\n"


@pytest.mark.parametrize(
    ("fragment", "words"),
    [
        ("#nope", "no branch or tag 'nope'"),
        ("#v1:missing", "no directory 'missing'"),
        ("#v1:../x", "not a plain"),
    ],
)
def test_bad_refs_and_subdirs_name_the_line(
    env: dict[str, Any], daemon: Any, fragment: str, words: str
) -> None:
    url, _ = daemon
    with pytest.raises(BerthError) as caught:
        do_build(env, f"FROM base\nADD {url}{fragment} /app/\n", tags=["bad:1"])
    assert words in caught.value.message and ":2:" in caught.value.message, caught.value.message


def test_what_counts_as_a_repository() -> None:
    assert parse_git("https://example.com/x/app.git#v2:src") is not None
    assert parse_git("git@example.com:team/app.git") is not None
    assert parse_git("git://example.com/app") is not None
    assert parse_git("https://example.com/file.tar.gz") is None  # a file to fetch
    with pytest.raises(InvalidInput):
        parse_git("https://example.com/app.git#--upload-pack=x")
