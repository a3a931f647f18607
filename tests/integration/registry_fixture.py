"""Session fixtures for registry-pull tests: the two local registries, the
test images, and a stub registry in Python for what a real registry will not
do on demand.

- `registries`: runs hack/registry.sh start (and stops at session end only
  registries it started) and hack/push-test-images.sh (cached, idempotent).
- `stub_registry`: a threaded http.server on 127.0.0.1 (ephemeral port) that
  proxies /v2/ to the plain registry on 127.0.0.1:5000 and can, per test:
    require `Authorization: Bearer <token>` (answering 401 with a
    WWW-Authenticate challenge whose realm is its own /token endpoint, which
    issues a token for the test user's basic credentials);
    serve a blob's bytes corrupted, answer 500 for it, or stall half-way;
    serve a manifest of an unknown media type;
    serve a whole image of its own (`manifests` plus `blobs` by digest), for
    layers a real registry would refuse to hold or a test must craft
    (a truncated gzip, a hostile tar).
  Chosen over a token server in front of docker-registry's own token auth:
  docker-registry would need a signing key and a certificate chain for
  tokens, and the fault injection needs a proxy anyway.
"""

from __future__ import annotations

import base64
import http.client
import os
import secrets
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from bundle import SUBREAPER

REPO = Path(__file__).resolve().parents[2]
REGISTRY_DIR = Path(os.environ.get("DOCKYARD_REGISTRY_DIR", REPO / "build" / "registry"))
PLAIN = "127.0.0.1:5000"
TLS = "127.0.0.1:5443"
USER = "dockyard"
PASSWORD = "dockyard-test-password"  # test-only; hack/registry.sh sets it


@dataclass(frozen=True)
class Registries:
    plain: str
    tls: str
    ca: Path
    user: str
    password: str


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    # Through the conftest's subreaper: its reaper thread would otherwise
    # steal the exit status of a plain subprocess.run.
    return SUBREAPER.run(argv, timeout=900, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="session")
def registries() -> Iterator[Registries]:
    status = _run([str(REPO / "hack" / "registry.sh"), "status"])
    started_here = status.returncode != 0
    for argv in ([str(REPO / "hack" / "registry.sh"), "start"], [str(REPO / "hack" / "push-test-images.sh")]):
        result = _run(argv)
        if result.returncode != 0:
            pytest.fail(f"{' '.join(argv)} failed: {result.stderr[-2000:]}")
    yield Registries(PLAIN, TLS, REGISTRY_DIR / "ca" / "ca.crt", USER, PASSWORD)
    if started_here:
        _run([str(REPO / "hack" / "registry.sh"), "stop"])


@dataclass
class StubRegistry:
    """State shared with the handler threads; tests set it, `reset()` clears it."""

    port: int = 0
    upstream: str = PLAIN
    require_bearer: bool = False
    faults: dict[str, str] = field(default_factory=dict)  # blob digest -> corrupt | 500 | stall | drop-once
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # "<repo>:<ref>" -> body, type
    blobs: dict[str, bytes] = field(default_factory=dict)  # digest -> bytes, served for any repository
    hits: Counter[str] = field(default_factory=Counter)
    queries: list[str] = field(default_factory=list)  # the query string of every request, in order
    tokens: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self.lock:
            self.require_bearer = False
            self.faults.clear()
            self.manifests.clear()
            self.blobs.clear()
            self.hits.clear()
            self.queries.clear()
            self.tokens.clear()
        self.release.set()  # let any stalled handler finish
        self.release = threading.Event()


def _handler(stub: StubRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: pytest output is for failures

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            with stub.lock:
                stub.hits[path] += 1
                stub.queries.append(self.path.partition("?")[2])
            if path == "/token":
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
                    return
                token = secrets.token_hex(16)
                with stub.lock:
                    stub.tokens.add(token)
                self._send(200, b'{"token":"%s","expires_in":300}' % token.encode(), {"Content-Type": "application/json"})
                return
            if stub.require_bearer:
                auth = self.headers.get("Authorization", "")
                if not (auth.startswith("Bearer ") and auth[7:] in stub.tokens):
                    repo = path.split("/")[2] if path.count("/") >= 4 else ""
                    challenge = f'Bearer realm="http://{stub.address}/token",service="dockyard-stub"'
                    if repo:
                        challenge += f',scope="repository:{repo}:pull"'
                    self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge})
                    return
            parts = path.split("/")
            if len(parts) >= 5 and parts[-2] == "manifests":
                override = stub.manifests.get(f"{'/'.join(parts[2:-2])}:{parts[-1]}")
                if override is not None:
                    self._send(200, override[0], {"Content-Type": override[1]})
                    return
            blob = stub.blobs.get(parts[-1]) if len(parts) >= 5 and parts[-2] == "blobs" else None
            if blob is not None:
                self._send(200, blob, {"Content-Type": "application/octet-stream", "Docker-Content-Digest": parts[-1]})
                return
            fault = stub.faults.get(parts[-1]) if len(parts) >= 5 and parts[-2] == "blobs" else None
            if fault == "500":
                self._send(500, b"injected failure")
                return
            self._proxy(path, fault)

        def _proxy(self, path: str, fault: str | None) -> None:
            conn = http.client.HTTPConnection(stub.upstream, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "range")}
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
            finally:
                conn.close()
            if resp.status in (301, 302, 303, 307, 308):
                self._send(resp.status, b"", {"Location": resp.getheader("Location", "")})
                return
            keep = {k: v for k, v in resp.getheaders() if k.lower() in ("content-type", "docker-content-digest")}
            if fault == "corrupt" and body:
                body = bytes([body[0] ^ 0xFF]) + body[1:]
            if fault == "drop-once":
                # Half the body, then the connection closes; the next request gets it whole.
                with stub.lock:
                    stub.faults.pop(path.rsplit("/", 1)[-1], None)
                self._send_half(resp.status, body, keep)
                return
            if fault == "stall":
                self._send_half(resp.status, body, keep)
                stub.release.wait(60)
                return
            self._send(resp.status, body, keep)

        def _send_half(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            """Headers for the whole body, then only its first half; the connection closes after."""
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True

    return Handler


@pytest.fixture(scope="session")
def _stub_server(registries: Registries) -> Iterator[StubRegistry]:
    stub = StubRegistry(upstream=registries.plain)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    server.daemon_threads = True
    stub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="stub-registry", daemon=True)
    thread.start()
    yield stub
    stub.release.set()
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def stub_registry(_stub_server: StubRegistry) -> Iterator[StubRegistry]:
    """The stub registry, with no faults and no auth required at the start of each test."""
    _stub_server.reset()
    yield _stub_server
    _stub_server.reset()
