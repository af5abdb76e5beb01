"""Bearer-token auth against a real registry (issue 4): Debian's docker-registry (distribution
2.8) configured with `auth: token:`, and a small token server in this test that issues JWTs signed
with a key and certificate the test generates (RS256; the registry trusts the certificate through
its `rootcertbundle`, the token names it in its `x5c` header).

The token server is strict like a real one: anonymous requests get pull access only, the right
basic credentials get what they ask for, wrong ones a 401. It records every request, so the tests
check that Berth asks once per scope and reuses the token, asks for both repositories' scopes
for a cross-repository mount, and never shows the password or a token in its output, errors or
state files. Runs on the machine itself (registry and token server on loopback, temp data dirs).
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import os
import secrets
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from images_helpers import BERTH
from registry import REGISTRY_BIN, Registry, free_port

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(os.geteuid() != 0, reason="the image store needs root (mknod, trusted xattrs)"),
]

USER, PASSWORD = "pusher", "t0ken-Secr3t-pa55word"
SERVICE, ISSUER = "berth-test-registry", "berth-test-token-issuer"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Issued:
    account: str | None  # who authenticated (None: anonymous)
    scopes: list[str]
    granted: list[dict[str, Any]]
    token: str


@dataclass
class TokenServer:
    """Issues registry tokens (docker's token spec) signed with a fresh RSA key and certificate."""

    dir: Path
    issued: list[Issued] = field(default_factory=list)
    refused: int = 0

    def __post_init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = self.dir / "token-ca.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.x5c = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, body = owner.answer(self.path, self.headers.get("Authorization"))
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    self.close_connection = True  # the client gave up waiting

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, authorization: str | None) -> tuple[int, bytes]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        scopes = [s for item in query.get("scope", []) for s in item.split()]
        account = None
        if authorization:
            kind, _, value = authorization.partition(" ")
            user, _, password = base64.b64decode(value).decode().partition(":")
            if kind != "Basic" or (user, password) != (USER, PASSWORD):
                self.refused += 1
                return 401, b'{"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}'
            account = user
        if query.get("service") != [SERVICE]:
            return 400, b'{"errors": [{"code": "BAD_REQUEST", "message": "wrong service"}]}'
        granted = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            allowed = [a for a in actions.split(",") if account is not None or a == "pull"]
            granted.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": account or "",
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": granted,
        }
        token = self.sign(claims)
        self.issued.append(Issued(account, scopes, granted, token))
        return 200, json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()

    def sign(self, claims: dict[str, Any]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"


def start_token_registry(tokens: TokenServer, root: Path) -> Registry:
    if not Path(REGISTRY_BIN).exists():
        pytest.skip("docker-registry is not installed (scripts/install-deps.sh installs it)")
    port = free_port()
    config = f"""version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {root / "data"}
http:
  addr: 127.0.0.1:{port}
auth:
  token:
    realm: {tokens.realm}
    service: {SERVICE}
    issuer: {ISSUER}
    rootcertbundle: {tokens.bundle}
"""
    (root / "config.yml").write_text(config)
    with open(root / "registry.log", "wb") as log:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(root / "config.yml")], stdout=log, stderr=log)
    reg = Registry(f"127.0.0.1:{port}", proc, root)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {reg.log()}")
        try:
            urllib.request.urlopen(f"http://{reg.host}/v2/", timeout=1)
        except urllib.error.HTTPError as exc:
            if exc.code == 401 and "Bearer" in (exc.headers.get("WWW-Authenticate") or ""):
                return reg
        except OSError:
            pass
        time.sleep(0.1)
    reg.stop()
    raise RuntimeError("docker-registry did not answer in 20 s")


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(tmp_path_factory.mktemp("token-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def registry(tokens: TokenServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_token_registry(tokens, tmp_path_factory.mktemp("token-registry"))
    try:
        yield reg
    finally:
        reg.stop()


@dataclass
class Run:
    out: dict[str, Any]
    stdout: str
    stderr: str


def berth(data: Path, *args: str, password: str | None = None, json_out: bool = True) -> Run:
    """`berth` with stdout and stderr both kept (to look for secrets in them)."""
    env = {**os.environ, "BERTH_DATA_DIR": str(data)}
    extra = ["--username", USER, "--password-stdin"] if password is not None else []
    cmd = [BERTH, *args, *extra, *(["--json"] if json_out else [])]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=env,
        input=(password + "\n") if password else None,
        timeout=120,
    )
    out = json.loads(proc.stdout) if json_out else {}
    out["exit_code"] = proc.returncode
    return Run(out, proc.stdout, proc.stderr)


def tiny_rootfs(dest: Path) -> Path:
    """A rootfs tarball of a few small files: enough for an image of one layer."""
    path = dest / "rootfs.tar"
    with tarfile.open(path, "w") as tf:
        for name, data in {"etc/hello": b"hello\n", "srv/data": os.urandom(4096)}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return path


def files_under(root: Path) -> Iterator[Path]:
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


def assert_no_secrets(runs: list[Run], roots: list[Path], secrets_: list[str]) -> None:
    for run in runs:
        for secret in secrets_:
            assert secret not in run.stdout and secret not in run.stderr, "a secret in berth's output"
    for root in roots:
        for path in files_under(root):
            data = path.read_bytes()
            for secret in secrets_:
                assert secret.encode() not in data, f"a secret in {path}"


def test_token_flow_push_pull_mount(
    registry: Registry, tokens: TokenServer, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    """Push with credentials (one token for the whole push), pull anonymously (a pull-only token),
    refuse anonymous and wrong-password pushes, mount a blob across repositories."""
    rec = getattr(pytestconfig, "berth_reliability", None)
    if rec is not None:
        rec.inputs(2, "registry auth refusals")
    src, other = tmp_path / "src", tmp_path / "other"
    runs = [berth(src, "image", "import", str(tiny_rootfs(tmp_path)), "-t", "tiny:1", "-c", 'CMD ["/x"]')]
    digest = runs[0].out["data"]["digest"]
    ref = f"{registry.host}/tok/app:1"

    # Anonymous push: the token server grants pull only, the registry refuses the upload.
    anon = berth(src, "image", "push", "tiny:1", ref, "--insecure")
    assert anon.out["exit_code"] != 0 and anon.out["error"]["kind"] == "permission-denied", anon.out
    assert "anonymous" in anon.out["error"]["message"]
    assert tokens.issued and all(i.account is None for i in tokens.issued)

    # Wrong password: the token service says no, and the message names the account, not the password.
    wrong = berth(src, "image", "push", "tiny:1", ref, "--insecure", password="not-" + PASSWORD)
    assert wrong.out["error"]["kind"] == "permission-denied", wrong.out
    assert "token service" in wrong.out["error"]["message"] and USER in wrong.out["error"]["message"]
    assert tokens.refused >= 1
    runs += [anon, wrong]

    # The right credentials: one token request covers every call of the push (HEADs, POST, PUTs).
    before = len(tokens.issued)
    pushed = berth(src, "image", "push", "tiny:1", ref, "--insecure", password=PASSWORD)
    assert pushed.out["exit_code"] == 0, pushed.out
    assert [a["detail"]["how"] for a in pushed.out["actions"] if a["action"] == "upload-blob"] == [
        "uploaded",
        "uploaded",
    ]
    new = tokens.issued[before:]
    assert len(new) == 1, [(i.account, i.scopes) for i in new]
    assert new[0].account == USER and new[0].scopes == ["repository:tok/app:pull,push"]
    runs.append(pushed)

    # Anonymous pull into another store: one pull-only token for manifest, config and layer.
    before = len(tokens.issued)
    pulled = berth(other, "image", "pull", ref, "--insecure", "--retries", "0")  # a challenge is no retry
    assert pulled.out["exit_code"] == 0 and pulled.out["data"]["digest"] == digest, pulled.out
    new = tokens.issued[before:]
    assert [(i.account, i.scopes) for i in new] == [(None, ["repository:tok/app:pull"])]
    runs.append(pulled)

    # Push the pulled image to another repository: its blobs are mounted from tok/app, with a
    # token that covers both repositories (push on the target, pull on the source).
    before = len(tokens.issued)
    copy_ref = f"{registry.host}/tok/copy:1"
    mounted = berth(other, "image", "push", ref, copy_ref, "--insecure", password=PASSWORD)
    assert mounted.out["exit_code"] == 0, mounted.out
    hows = [a["detail"]["how"] for a in mounted.out["actions"] if a["action"] == "upload-blob"]
    assert hows == ["mounted", "mounted"], mounted.out["actions"]
    scopes = {s for i in tokens.issued[before:] for s in i.scopes}
    assert {"repository:tok/copy:pull,push", "repository:tok/app:pull"} <= scopes
    runs.append(mounted)
    check = berth(tmp_path / "third", "image", "pull", copy_ref, "--insecure")
    assert check.out["data"]["digest"] == digest
    runs.append(check)

    for store in (src, other):
        verify = berth(store, "image", "verify")
        assert verify.out["data"]["ok"], verify.out
    # Credentials and tokens: nowhere in Berth's output (JSON or text), errors or state files.
    text = berth(
        src, "image", "push", "tiny:1", ref, "--insecure", password="not-" + PASSWORD, json_out=False
    )
    assert text.out["exit_code"] != 0 and "refused the credentials" in text.stderr
    runs.append(text)
    assert_no_secrets(runs, [src, other, tmp_path / "third"], [PASSWORD, *(i.token for i in tokens.issued)])
    assert PASSWORD not in registry.log()


def test_token_service_that_stalls_or_lies(registry: Registry, tokens: TokenServer, tmp_path: Path) -> None:
    """A token service that answers garbage, or nothing: a clear permission or registry error."""
    data = tmp_path / "data"
    ref = f"{registry.host}/tok/app:1"
    original = tokens.answer
    try:
        tokens.answer = lambda path, auth: (200, b'{"token": "not a token\\r\\nX-Injected: 1"}')  # type: ignore[method-assign]
        bad = berth(data, "image", "pull", ref, "--insecure")
        assert (
            bad.out["error"]["kind"] == "permission-denied"
            and "no usable token" in bad.out["error"]["message"]
        )
        tokens.answer = lambda path, auth: (500, b"{}")  # type: ignore[method-assign]
        down = berth(data, "image", "pull", ref, "--insecure")
        assert down.out["error"]["kind"] == "permission-denied" and "HTTP 500" in down.out["error"]["message"]

        def stall(path: str, auth: str | None) -> tuple[int, bytes]:
            time.sleep(2)
            return 500, b"{}"

        tokens.answer = stall  # type: ignore[method-assign]
        started = time.monotonic()
        slow = berth(data, "image", "pull", ref, "--insecure", "--timeout", "0.5")
        assert slow.out["error"]["kind"] == "registry-error", slow.out
        assert "token service" in slow.out["error"]["message"] and "stalls" in slow.out["error"]["message"]
        assert time.monotonic() - started < 30
    finally:
        tokens.answer = original  # type: ignore[method-assign]
    assert not (data / "images" / "tags.json").exists()
