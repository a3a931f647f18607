"""The puller against an in-process fake registry (httpx.MockTransport): no sockets.

The content store is the real one (cri/content/store.py) under tmp_path.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.cri.content.store import ContentStore
from dockyard.cri.errors import PullError
from dockyard.cri.image.platform import Platform
from dockyard.cri.image.reference import parse_reference
from dockyard.cri.image.registry.auth import Credentials
from dockyard.cri.image.registry.hosts import HostsConfig
from dockyard.cri.image.registry.puller import Puller

SECRET = "pa55-W0rd-xyz"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def asyncio_test(fn: Callable[..., Any]) -> Callable[..., None]:
    """Run an async test in a fresh event loop (the project does not use pytest-asyncio)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return run


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class FakeRegistry:
    """A registry for one repository; `faults` maps a blob digest to a behaviour."""

    host: str = "registry.test"
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # tag or digest -> body, type
    faults: dict[str, str] = field(default_factory=dict)
    require_bearer: bool = False
    require_basic: bool = False
    hits: Counter[str] = field(default_factory=Counter)
    seen_auth: list[tuple[str, str | None]] = field(default_factory=list)
    stall: asyncio.Event = field(default_factory=asyncio.Event)
    tokens_issued: int = 0

    def add_blob(self, data: bytes) -> str:
        digest = sha(data)
        self.blobs[digest] = data
        return digest

    def add_image(self, tag: str, layers: list[bytes], arch: str = "amd64", config_extra: dict[str, Any] | None = None) -> str:
        diff_ids = [sha(layer) for layer in layers]  # fake: the test layers are not compressed
        config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}, **(config_extra or {})}).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": self.add_blob(config), "size": len(config)},
            "layers": [{"mediaType": GZIP, "digest": self.add_blob(layer), "size": len(layer)} for layer in layers],
        }).encode()
        return self.add_manifest(tag, manifest, OCI_MANIFEST)

    def add_manifest(self, tag: str | None, body: bytes, media_type: str) -> str:
        digest = sha(body)
        self.manifests[digest] = (body, media_type)
        if tag:
            self.manifests[tag] = (body, media_type)
        return digest

    def authorized(self, request: httpx.Request) -> bool:
        header = request.headers.get("authorization")
        self.seen_auth.append((request.url.host, header))
        if self.require_bearer:
            return header == "Bearer good-token"
        if self.require_basic:
            return header == "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
        return True

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.hits[path] += 1
        if request.url.host == "auth.test" and path == "/token":
            expected = "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
            if request.headers.get("authorization") != expected:
                return httpx.Response(401)
            assert request.url.params.get_list("scope") == ["repository:app:pull"]
            self.tokens_issued += 1
            return httpx.Response(200, json={"token": "good-token", "expires_in": 300})
        if request.url.host == "cdn.test":
            return self.blob_response(path.rsplit("/", 1)[1])
        if not self.authorized(request):
            if self.require_bearer:
                challenge = 'Bearer realm="https://auth.test/token",service="registry.test"'
            else:
                challenge = 'Basic realm="test"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if path == "/v2/":
            return httpx.Response(200)
        parts = path.split("/")
        kind, obj = parts[-2], parts[-1]
        if kind == "manifests":
            if obj not in self.manifests:
                return httpx.Response(404)
            body, media_type = self.manifests[obj]
            return httpx.Response(200, content=body, headers={"Content-Type": media_type})
        if kind == "blobs":
            fault = self.faults.get(obj)
            if fault == "redirect":
                return httpx.Response(307, headers={"Location": f"https://cdn.test/data/{obj}?sig=abc"})
            return self.blob_response(obj)
        return httpx.Response(404)

    def blob_response(self, digest: str) -> httpx.Response:
        if digest not in self.blobs:
            return httpx.Response(404)
        data = self.blobs[digest]
        fault = self.faults.get(digest)
        if fault == "corrupt":
            return httpx.Response(200, content=b"X" + data[1:])
        if fault == "500":
            return httpx.Response(500)
        if fault in ("stall", "break-once"):
            stall = self.stall

            async def body() -> AsyncIterator[bytes]:
                yield data[: len(data) // 2]
                if fault == "break-once":
                    self.faults.pop(digest)
                    raise httpx.ReadError("connection reset")
                await stall.wait()
                yield data[len(data) // 2 :]

            return httpx.Response(200, content=body())
        return httpx.Response(200, content=data)


@dataclass
class RecordingMetrics:
    reused: int = 0
    pulled: int = 0

    def layer_reused(self) -> None:
        self.reused += 1

    def bytes_pulled(self, count: int, registry: str = "") -> None:
        self.pulled += count


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(str(tmp_path / "content"))


def make_puller(registry: FakeRegistry, store: ContentStore, hosts: HostsConfig | None = None, **kw: Any) -> Puller:
    kw.setdefault("retries", 2)
    kw.setdefault("backoff", 0.001)
    kw.setdefault("no_progress_timeout", 0.3)
    return Puller(hosts or HostsConfig(None), store, platform=Platform("linux", "amd64"),
                  transport=httpx.MockTransport(registry.handle), **kw)


def ingest_empty(store: ContentStore) -> bool:
    return os.listdir(store.ingest_dir) == []


async def pull(puller: Puller, text: str, auth: Credentials | None = None) -> Any:
    try:
        return await puller.pull(parse_reference(text), auth)
    finally:
        await puller.aclose()


async def pull_error(puller: Puller, text: str, auth: Credentials | None = None) -> PullError:
    """The PullError the pull fails with (the test fails if it succeeds)."""
    with pytest.raises(PullError) as info:
        await pull(puller, text, auth)
    return info.value


LAYERS = [os.urandom(3000), os.urandom(5000), os.urandom(100)]


@asyncio_test
async def test_pull_single_manifest(registry: FakeRegistry, store: ContentStore) -> None:
    """Manifest, config and every layer land in the content store; the result names them."""
    digest = registry.add_image("v1", LAYERS)
    metrics = RecordingMetrics()
    image = await pull(make_puller(registry, store, metrics=metrics), "registry.test/app:v1")
    assert image.manifest_digest == digest == image.platform_manifest_digest
    assert image.repo_digest == f"registry.test/app@{digest}"
    assert [layer.digest for layer in image.layers] == [sha(layer) for layer in LAYERS]
    assert store.digests() == set(registry.blobs) | {digest}
    assert image.config["architecture"] == "amd64"
    assert metrics.pulled == sum(map(len, LAYERS)) + len(store.read(image.config_digest))
    assert ingest_empty(store)


@asyncio_test
async def test_index_picks_platform(registry: FakeRegistry, store: ContentStore) -> None:
    """From an index the node's platform is chosen; the repo digest is the index's."""
    amd = registry.add_image("", LAYERS[:1], "amd64")
    arm = registry.add_image("", LAYERS[:1], "arm64")
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": arm, "size": len(registry.manifests[arm][0]), "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": OCI_MANIFEST, "digest": amd, "size": len(registry.manifests[amd][0]), "platform": {"os": "linux", "architecture": "amd64"}},
    ]}).encode()
    index_digest = registry.add_manifest("multi", index, OCI_INDEX)
    image = await pull(make_puller(registry, store), "registry.test/app:multi")
    assert image.manifest_digest == index_digest and image.platform_manifest_digest == amd
    assert image.config["architecture"] == "amd64"
    assert image.repo_digest == f"registry.test/app@{index_digest}"


@asyncio_test
async def test_index_without_platform(registry: FakeRegistry, store: ContentStore) -> None:
    """An index lacking the node's platform fails not_found, naming what it offers."""
    arm = registry.add_image("", LAYERS[:1], "arm64")
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": arm, "size": 1, "platform": {"os": "linux", "architecture": "arm64"}}]}).encode()
    registry.add_manifest("multi", index, OCI_INDEX)
    err = await pull_error(make_puller(registry, store), "registry.test/app:multi")
    assert err.reason == "not_found" and "linux/arm64/v8" in str(err)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"schemaVersion": 2, "mediaType": "application/vnd.example.thing+json"}', "application/vnd.example.thing+json"),
        (b'{"schemaVersion": 2}', "application/octet-stream"),
        (b'{"schemaVersion": 1, "name": "x", "fsLayers": []}', "application/vnd.docker.distribution.manifest.v1+prettyjws"),
        (b"not json", OCI_MANIFEST),
    ],
)
@asyncio_test
async def test_unknown_manifest_media_type(registry: FakeRegistry, store: ContentStore, body: bytes, content_type: str) -> None:
    """A manifest of a type we do not pull fails bad_media_type and stores nothing."""
    registry.add_manifest("odd", body, content_type)
    err = await pull_error(make_puller(registry, store), "registry.test/app:odd")
    assert err.reason == "bad_media_type"
    assert store.digests() == set()


@asyncio_test
async def test_unknown_layer_media_type(registry: FakeRegistry, store: ContentStore) -> None:
    """A layer media type we cannot unpack (e.g. a helm chart) is refused before any download."""
    manifest = json.loads(registry.manifests[registry.add_image("v1", LAYERS[:1])][0])
    manifest["layers"][0]["mediaType"] = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
    registry.add_manifest("helm", json.dumps(manifest).encode(), OCI_MANIFEST)
    err = await pull_error(make_puller(registry, store), "registry.test/app:helm")
    assert err.reason == "bad_media_type" and "helm" in str(err)


@asyncio_test
async def test_corrupt_layer_keeps_nothing(registry: FakeRegistry, store: ContentStore) -> None:
    """A blob whose bytes do not match its digest fails digest_mismatch; it is not stored, no temp file stays."""
    registry.add_image("v1", LAYERS)
    registry.faults[sha(LAYERS[1])] = "corrupt"
    err = await pull_error(make_puller(registry, store), "registry.test/app:v1")
    assert err.reason == "digest_mismatch" and err.code == "InvalidArgument"
    assert not store.has(sha(LAYERS[1]))
    assert ingest_empty(store)


@asyncio_test
async def test_manifest_by_digest_verified(registry: FakeRegistry, store: ContentStore) -> None:
    """Pulling by digest, a manifest with other bytes fails digest_mismatch."""
    digest = registry.add_image("v1", LAYERS[:1])
    other = registry.add_image("v2", LAYERS[1:2])
    registry.manifests[digest] = registry.manifests[other]
    err = await pull_error(make_puller(registry, store), f"registry.test/app@{digest}")
    assert err.reason == "digest_mismatch"


@asyncio_test
async def test_500_retried_then_fails(registry: FakeRegistry, store: ContentStore) -> None:
    """A registry answering 500 is retried `retries` times, then the pull fails registry_error (Unavailable)."""
    registry.add_image("v1", LAYERS[:1])
    registry.faults[sha(LAYERS[0])] = "500"
    err = await pull_error(make_puller(registry, store, retries=3), "registry.test/app:v1")
    assert err.reason == "registry_error" and err.code == "Unavailable"
    assert registry.hits[f"/v2/app/blobs/{sha(LAYERS[0])}"] == 4
    assert ingest_empty(store)


@asyncio_test
async def test_stalled_body_no_progress(registry: FakeRegistry, store: ContentStore) -> None:
    """A body that stops sending fails no_progress after the no-progress timeout; no temp file stays."""
    registry.add_image("v1", LAYERS[:1])
    registry.faults[sha(LAYERS[0])] = "stall"
    err = await pull_error(make_puller(registry, store, no_progress_timeout=0.2), "registry.test/app:v1")
    assert err.reason == "no_progress"
    assert ingest_empty(store) and not store.has(sha(LAYERS[0]))


@asyncio_test
async def test_interrupted_body_restarts(registry: FakeRegistry, store: ContentStore) -> None:
    """A connection that breaks mid-body is retried from the start and the pull succeeds."""
    registry.add_image("v1", LAYERS[:1])
    registry.faults[sha(LAYERS[0])] = "break-once"
    await pull(make_puller(registry, store), "registry.test/app:v1")
    assert store.has(sha(LAYERS[0])) and ingest_empty(store)
    assert registry.hits[f"/v2/app/blobs/{sha(LAYERS[0])}"] == 2


@asyncio_test
async def test_present_layers_skipped(registry: FakeRegistry, store: ContentStore) -> None:
    """Layers already in the store are not downloaded again and count as reused."""
    registry.add_image("v1", LAYERS)
    store.put(sha(LAYERS[0]), LAYERS[0])
    store.put(sha(LAYERS[2]), LAYERS[2])
    metrics = RecordingMetrics()
    await pull(make_puller(registry, store, metrics=metrics), "registry.test/app:v1")
    assert metrics.reused == 2
    assert registry.hits[f"/v2/app/blobs/{sha(LAYERS[0])}"] == 0
    assert registry.hits[f"/v2/app/blobs/{sha(LAYERS[1])}"] == 1


@asyncio_test
async def test_concurrent_pulls_share_downloads(registry: FakeRegistry, store: ContentStore) -> None:
    """Two pulls of the same image at once download each blob once."""
    registry.add_image("v1", LAYERS)
    registry.add_image("v2", LAYERS[1:] + [os.urandom(10)])
    puller = make_puller(registry, store)
    try:
        a, b, c = await asyncio.gather(*(puller.pull(parse_reference(t)) for t in
                                          ("registry.test/app:v1", "registry.test/app:v1", "registry.test/app:v2")))
    finally:
        await puller.aclose()
    assert a == b and c.layers[0] == a.layers[1]
    for layer in LAYERS:
        assert registry.hits[f"/v2/app/blobs/{sha(layer)}"] == 1


def stalling_puller(registry: FakeRegistry, store: ContentStore) -> Puller:
    """A puller for registry.test/app:v1, whose one layer's body stalls (until registry.stall is set)."""
    registry.add_image("v1", LAYERS[:1])
    registry.faults[sha(LAYERS[0])] = "stall"
    return make_puller(registry, store, no_progress_timeout=30)


async def downloading(registry: FakeRegistry) -> None:
    """Until the layer's download is under way."""
    while registry.hits[f"/v2/app/blobs/{sha(LAYERS[0])}"] == 0:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)


@asyncio_test
async def test_cancel_leaves_no_temp_file(registry: FakeRegistry, store: ContentStore) -> None:
    """Cancelling a pull mid-download raises CancelledError and leaves no temp file or in-flight entry."""
    puller = stalling_puller(registry, store)
    task = asyncio.create_task(puller.pull(parse_reference("registry.test/app:v1")))
    await downloading(registry)
    assert not ingest_empty(store)  # the download is under way
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ingest_empty(store) and puller._inflight == {}
    await puller.aclose()


@asyncio_test
async def test_cancel_one_of_two_sharing(registry: FakeRegistry, store: ContentStore) -> None:
    """Cancelling one of two pulls sharing a download does not break the other."""
    puller = stalling_puller(registry, store)
    first = asyncio.create_task(puller.pull(parse_reference("registry.test/app:v1")))
    second = asyncio.create_task(puller.pull(parse_reference("registry.test/app:v1")))
    await downloading(registry)
    first.cancel()
    registry.stall.set()
    image = await second
    assert first.cancelled() and store.has(image.layers[0].digest)
    await puller.aclose()


@asyncio_test
async def test_bearer_flow_and_no_secret_in_logs(registry: FakeRegistry, store: ContentStore, caplog: pytest.LogCaptureFixture) -> None:
    """The bearer challenge leads to one token fetch with basic credentials; the password is never logged."""
    caplog.set_level(logging.DEBUG)
    registry.require_bearer = True
    registry.add_image("v1", LAYERS)
    await pull(make_puller(registry, store), "registry.test/app:v1", Credentials("user", SECRET))
    assert registry.tokens_issued == 1
    assert SECRET not in caplog.text
    assert base64.b64encode(f"user:{SECRET}".encode()).decode() not in caplog.text


@asyncio_test
async def test_wrong_credentials(registry: FakeRegistry, store: ContentStore, caplog: pytest.LogCaptureFixture) -> None:
    """Rejected credentials fail unauthorized (Unauthenticated); neither error nor log holds the secret."""
    caplog.set_level(logging.DEBUG)
    registry.require_bearer = True
    registry.add_image("v1", LAYERS)
    wrong = "wrong-" + SECRET
    err = await pull_error(make_puller(registry, store), "registry.test/app:v1", Credentials("user", wrong))
    assert err.reason == "unauthorized" and err.code == "Unauthenticated"
    assert "registry.test/app:v1" in str(err)
    assert wrong not in str(err) and wrong not in caplog.text and wrong not in repr(err.__cause__)


@asyncio_test
async def test_basic_auth(registry: FakeRegistry, store: ContentStore) -> None:
    """A Basic challenge is answered with the credentials; without them the pull fails unauthorized."""
    registry.require_basic = True
    registry.add_image("v1", LAYERS[:1])
    await pull(make_puller(registry, store), "registry.test/app:v1", Credentials("user", SECRET))
    err = await pull_error(make_puller(registry, ContentStore(store.root + "2")), "registry.test/app:v1")
    assert err.reason == "unauthorized"


@asyncio_test
async def test_redirect_drops_authorization(registry: FakeRegistry, store: ContentStore) -> None:
    """A blob redirected to another host is fetched there without the registry's Authorization header."""
    registry.require_basic = True
    registry.add_image("v1", LAYERS[:1])
    registry.faults[sha(LAYERS[0])] = "redirect"
    await pull(make_puller(registry, store), "registry.test/app:v1", Credentials("user", SECRET))
    assert store.has(sha(LAYERS[0]))
    assert registry.hits[f"/data/{sha(LAYERS[0])}"] == 1
    assert all(auth is None for host, auth in registry.seen_auth if host == "cdn.test")


def write_hosts(tmp_path: Path, namespace: str, text: str) -> HostsConfig:
    (tmp_path / "certs.d" / namespace).mkdir(parents=True)
    (tmp_path / "certs.d" / namespace / "hosts.toml").write_text(text)
    return HostsConfig(str(tmp_path / "certs.d"))


@asyncio_test
async def test_mirror_failover_in_listed_order(store: ContentStore, tmp_path: Path) -> None:
    """A mirror lacking the image hands over to the next listed host."""
    empty, full = FakeRegistry(host="m1.test"), FakeRegistry(host="m2.test")
    full.add_image("v1", LAYERS[:1])

    async def route(request: httpx.Request) -> httpx.Response:
        return await (empty if request.url.host == "m1.test" else full).handle(request)

    hosts = write_hosts(tmp_path, "docker.io", '[host."https://m1.test"]\n[host."https://m2.test"]\n')
    puller = Puller(hosts, store, platform=Platform("linux", "amd64"), transport=httpx.MockTransport(route), backoff=0.001)
    try:
        image = await puller.pull(parse_reference("docker.io/library/app:v1"))
    finally:
        await puller.aclose()
    assert image.repo_digest.startswith("docker.io/library/app@")
    assert empty.hits["/v2/library/app/manifests/v1"] == 1 and full.hits["/v2/library/app/manifests/v1"] == 1


async def pull_routed(tmp_path: Path, store: ContentStore, namespace: str, hosts_toml: str, ref: str,
                      registries: dict[str, FakeRegistry]) -> tuple[list[str], Any]:
    """Pull ``ref`` with one hosts.toml, each host answered by its FakeRegistry
    (an unknown host refuses the connection); (hosts contacted in order, result or error)."""
    contacted: list[str] = []

    async def route(request: httpx.Request) -> httpx.Response:
        netloc = request.url.netloc.decode()
        if not contacted or contacted[-1] != netloc:
            contacted.append(netloc)
        if netloc not in registries:
            raise httpx.ConnectError("connection refused")
        return await registries[netloc].handle(request)

    hosts = write_hosts(tmp_path, namespace, hosts_toml)
    puller = Puller(hosts, store, platform=Platform("linux", "amd64"), transport=httpx.MockTransport(route),
                    backoff=0.001, retries=0)
    try:
        result: Any = await puller.pull(parse_reference(ref))
    except PullError as err:
        result = err
    finally:
        await puller.aclose()
    return contacted, result


@asyncio_test
async def test_upstream_after_the_mirrors(store: ContentStore, tmp_path: Path) -> None:
    """containerd's rule: mirrors in the listed order, then the namespace's upstream when no server is set."""
    upstream = FakeRegistry(host="registry-1.docker.io")
    upstream.add_image("v1", LAYERS[:1])
    contacted, image = await pull_routed(
        tmp_path, store, "docker.io", '[host."https://m1.test"]\n[host."https://m2.test"]\n', "docker.io/library/app:v1",
        {"m2.test": FakeRegistry(host="m2.test"), "registry-1.docker.io": upstream})
    assert contacted[:3] == ["m1.test", "m2.test", "registry-1.docker.io"]
    assert image.repo_digest.startswith("docker.io/library/app@")
    assert store.has(sha(LAYERS[0]))


@asyncio_test
async def test_server_elsewhere_means_no_upstream(store: ContentStore, tmp_path: Path) -> None:
    """With server set, the last host tried is the server; the namespace's own registry is never contacted."""
    contacted, err = await pull_routed(
        tmp_path, store, "docker.io", 'server = "https://only.test"\n[host."https://m1.test"]\n', "busybox",
        {"m1.test": FakeRegistry(host="m1.test"), "only.test": FakeRegistry(host="only.test")})
    assert isinstance(err, PullError) and err.reason == "not_found"
    assert contacted == ["m1.test", "only.test"]


@asyncio_test
async def test_plain_http_mirror_anywhere_and_ns(store: ContentStore, tmp_path: Path) -> None:
    """A hosts.toml's http:// mirror on a non-loopback host is used over plain HTTP, and every
    request to it carries ns=<namespace>, as containerd sends it."""
    mirror = FakeRegistry(host="kind-registry:5000")
    mirror.add_image("v1", LAYERS[:1])
    seen: list[str] = []
    handle = mirror.handle

    async def recording(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return await handle(request)

    mirror.handle = recording  # type: ignore[method-assign]
    contacted, image = await pull_routed(
        tmp_path, store, "docker.io", '[host."http://kind-registry:5000"]\n', "docker.io/library/app:v1",
        {"kind-registry:5000": mirror})
    assert contacted == ["kind-registry:5000"], image
    requests = [u for u in seen if "/v2/library/" in u]
    assert requests and all(u.startswith("http://kind-registry:5000/") and u.endswith("?ns=docker.io") for u in requests)


@asyncio_test
async def test_plain_http_refused_where_nothing_asks(store: ContentStore, tmp_path: Path) -> None:
    """An HTTPS registry's redirect to plain HTTP on another, non-loopback host is refused."""
    registry = FakeRegistry(host="registry.test")
    registry.add_image("v1", LAYERS[:1])
    registry.faults[sha(LAYERS[0])] = "redirect"

    async def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.test":
            return httpx.Response(307, headers={"Location": f"http://cdn.test{request.url.path}"})
        return await registry.handle(request)

    puller = Puller(HostsConfig(None), store, platform=Platform("linux", "amd64"), transport=httpx.MockTransport(route),
                    backoff=0.001, retries=0)
    with pytest.raises(PullError) as info:
        try:
            await puller.pull(parse_reference("registry.test/app:v1"))
        finally:
            await puller.aclose()
    assert "refusing http:// to cdn.test" in str(info.value)
    assert not store.has(sha(LAYERS[0]))


@asyncio_test
async def test_config_layer_count_mismatch(registry: FakeRegistry, store: ContentStore) -> None:
    """A config whose diff_ids do not match the manifest's layers fails bad_layer before layers download."""
    registry.add_image("v1", LAYERS, config_extra={"rootfs": {"type": "layers", "diff_ids": []}})
    err = await pull_error(make_puller(registry, store), "registry.test/app:v1")
    assert err.reason == "bad_layer"
    assert not store.has(sha(LAYERS[0]))
