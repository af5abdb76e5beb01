"""A real registry for the image tests: Debian's docker-registry on a free loopback port.

`start_registry` writes a small config (filesystem storage in a temp dir, optionally htpasswd
basic auth), starts the binary, waits for /v2/ to answer and returns a handle whose `stop` kills
exactly the PID it started. Test modules wrap it in their own fixtures
(tests/integration/conftest.py stays untouched).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REGISTRY_BIN = "/usr/bin/docker-registry"
USER, PASSWORD = "berth", "s3cret-Pa55"


@dataclass
class Registry:
    host: str
    proc: subprocess.Popen[bytes]
    root: Path
    auth: tuple[str, str] | None = None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        return (self.root / "registry.log").read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bcrypt_hash(password: str) -> str:
    """docker-registry's htpasswd accepts bcrypt only; glibc's crypt(3) on Debian 12 makes it."""
    try:
        import bcrypt

        return str(bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode())
    except ImportError:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt

        return str(crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH)))


def start_registry(auth: bool = False) -> Registry:
    if not Path(REGISTRY_BIN).exists():
        pytest.skip("docker-registry is not installed (scripts/install-deps.sh installs it)")
    root = Path(tempfile.mkdtemp(prefix="berth-registry-"))
    port = free_port()
    config = [
        "version: 0.1",
        "log:",
        "  level: info",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {root / 'data'}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if auth:
        (root / "htpasswd").write_text(f"{USER}:{bcrypt_hash(PASSWORD)}\n")
        config += ["auth:", "  htpasswd:", "    realm: berth-test", f"    path: {root / 'htpasswd'}"]
    (root / "config.yml").write_text("\n".join(config) + "\n")
    with open(root / "registry.log", "wb") as log:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(root / "config.yml")], stdout=log, stderr=log)
    reg = Registry(f"127.0.0.1:{port}", proc, root, (USER, PASSWORD) if auth else None)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {reg.log()}")
        try:
            urllib.request.urlopen(f"http://{reg.host}/v2/", timeout=1)
            return reg
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return reg
        except OSError:
            pass
        time.sleep(0.1)
    reg.stop()
    raise RuntimeError("docker-registry did not answer in 20 s")
