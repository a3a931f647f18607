"""Pulls from the real local registries (Debian's docker-registry, hack/registry.sh)
and from the Python stub registry in front of them, into a real ContentStore.

Root is not needed except to start the registries the first time.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from registry_fixture import Registries, StubRegistry, registries, stub_registry, _stub_server  # noqa: F401 (fixtures)

from dockyard.cri.content.store import ContentStore
from dockyard.cri.errors import PullError
from dockyard.cri.image.platform import Platform
from dockyard.cri.image.reference import parse_reference
from dockyard.cri.image.registry.auth import Credentials
from dockyard.cri.image.registry.hosts import HostsConfig
from dockyard.cri.image.registry.puller import PulledImage, Puller

AMD64 = Platform("linux", "amd64")


def hosts_dir(tmp_path: Path, entries: dict[str, str]) -> HostsConfig:
    root = tmp_path / "certs.d"
    for namespace, text in entries.items():
        (root / namespace).mkdir(parents=True)
        (root / namespace / "hosts.toml").write_text(text)
    return HostsConfig(str(root))


def pull(hosts: HostsConfig, store: ContentStore, ref: str, auth: Credentials | None = None, **kw: Any) -> PulledImage:
    kw.setdefault("retries", 1)
    kw.setdefault("backoff", 0.05)
    kw.setdefault("timeout", 20.0)
    kw.setdefault("no_progress_timeout", 20.0)

    async def run() -> PulledImage:
        puller = Puller(hosts, store, platform=AMD64, **kw)
        try:
            return await puller.pull(parse_reference(ref), auth)
        finally:
            await puller.aclose()

    return asyncio.run(run())


def assert_nothing_partial(store: ContentStore) -> None:
    assert os.listdir(store.ingest_dir) == []


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(str(tmp_path / "content"))


def test_pull_busybox_plain(registries: Registries, store: ContentStore, tmp_path: Path) -> None:
    """busybox from the plain-HTTP loopback registry (no hosts.toml: HTTPS is tried, then HTTP) lands verified in the store."""
    image = pull(HostsConfig(str(tmp_path / "none")), store, f"{registries.plain}/busybox:latest")
    assert image.repo_digest.startswith(f"{registries.plain}/busybox@sha256:")
    assert len(image.layers) == 1
    for digest in [image.manifest_digest, image.config_digest, image.layers[0].digest]:
        assert store.has(digest)
    assert image.config["architecture"] == "amd64"
    assert_nothing_partial(store)


@pytest.mark.parametrize(
    ("tag", "layer_type"),
    [
        ("busybox:v2s2", "application/vnd.docker.image.rootfs.diff.tar.gzip"),
        ("busybox:zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
        ("layers3:latest", "application/vnd.oci.image.layer.v1.tar+gzip"),
    ],
)
def test_pull_variants(registries: Registries, store: ContentStore, tmp_path: Path, tag: str, layer_type: str) -> None:
    """Docker schema 2, zstd and multi-layer images pull; layer media types are reported as served."""
    hosts = hosts_dir(tmp_path, {registries.plain: f'server = "http://{registries.plain}"\n'})
    image = pull(hosts, store, f"{registries.plain}/{tag}")
    assert all(layer.media_type == layer_type for layer in image.layers)
    assert all(store.has(layer.digest) for layer in image.layers)


def test_mirror_mapping_registry_k8s_io(registries: Registries, store: ContentStore, tmp_path: Path) -> None:
    """registry.k8s.io/pause:3.10 resolves through a hosts.toml mirror to the local registry."""
    hosts = hosts_dir(tmp_path, {"registry.k8s.io": f'[host."http://{registries.plain}"]\ncapabilities = ["pull", "resolve"]\n'})
    image = pull(hosts, store, "registry.k8s.io/pause:3.10")
    assert image.repo_digest.startswith("registry.k8s.io/pause@sha256:")


def test_index_picks_amd64(registries: Registries, store: ContentStore, tmp_path: Path) -> None:
    """From the amd64+arm64 index the amd64 manifest is chosen; the repo digest is the index's."""
    hosts = hosts_dir(tmp_path, {registries.plain: f'server = "http://{registries.plain}"\n'})
    image = pull(hosts, store, f"{registries.plain}/multi:latest")
    index = json.loads(store.read(image.manifest_digest))
    amd64 = next(m["digest"] for m in index["manifests"] if m["platform"]["architecture"] == "amd64")
    assert image.platform_manifest_digest == amd64
    assert image.config["architecture"] == "amd64"


def tls_hosts(tmp_path: Path, registries: Registries, ca: bool = True) -> HostsConfig:
    text = f'server = "https://{registries.tls}"\n' + (f'ca = "{registries.ca}"\n' if ca else "")
    return hosts_dir(tmp_path, {registries.tls: text})


def test_tls_basic_auth(registries: Registries, store: ContentStore, tmp_path: Path) -> None:
    """The TLS registry is reached with the CA from hosts.toml and basic credentials."""
    creds = Credentials(registries.user, registries.password)
    image = pull(tls_hosts(tmp_path, registries), store, f"{registries.tls}/busybox:latest", creds)
    assert store.has(image.layers[0].digest)


def test_tls_without_ca_fails(registries: Registries, store: ContentStore, tmp_path: Path) -> None:
    """Without the CA the TLS handshake fails (no retries needed to see it) and nothing is stored."""
    creds = Credentials(registries.user, registries.password)
    started = time.monotonic()
    with pytest.raises(PullError) as info:
        pull(tls_hosts(tmp_path, registries, ca=False), store, f"{registries.tls}/busybox:latest", creds, retries=3, backoff=1.0)
    assert info.value.reason == "registry_error" and "TLS" in str(info.value)
    assert time.monotonic() - started < 5
    assert store.digests() == set()


def test_tls_wrong_credentials(registries: Registries, store: ContentStore, tmp_path: Path) -> None:
    """Wrong basic credentials fail unauthorized (Unauthenticated); the password is not in the error."""
    wrong = "not-the-" + registries.password
    with pytest.raises(PullError) as info:
        pull(tls_hosts(tmp_path, registries), store, f"{registries.tls}/busybox:latest", Credentials(registries.user, wrong))
    assert info.value.reason == "unauthorized" and info.value.code == "Unauthenticated"
    assert wrong not in str(info.value)
    assert store.digests() == set()


def stub_hosts(tmp_path: Path, stub: StubRegistry) -> HostsConfig:
    return hosts_dir(tmp_path, {stub.address: f'server = "http://{stub.address}"\n'})


def test_bearer_flow(stub_registry: StubRegistry, store: ContentStore, tmp_path: Path) -> None:
    """A Bearer challenge leads to one token request with basic credentials, then the pull succeeds with the token."""
    stub_registry.require_bearer = True
    from registry_fixture import PASSWORD, USER

    image = pull(stub_hosts(tmp_path, stub_registry), store, f"{stub_registry.address}/busybox:latest", Credentials(USER, PASSWORD))
    assert store.has(image.layers[0].digest)
    assert stub_registry.hits["/token"] == 1 and len(stub_registry.tokens) == 1


def test_bearer_wrong_credentials(stub_registry: StubRegistry, store: ContentStore, tmp_path: Path) -> None:
    """A token server rejecting the credentials fails the pull unauthorized."""
    stub_registry.require_bearer = True
    with pytest.raises(PullError) as info:
        pull(stub_hosts(tmp_path, stub_registry), store, f"{stub_registry.address}/busybox:latest", Credentials("dockyard", "nope-secret"))
    assert info.value.reason == "unauthorized" and "nope-secret" not in str(info.value)


def busybox_layer(registries: Registries, store: ContentStore, tmp_path: Path) -> str:
    probe = ContentStore(str(tmp_path / "probe"))
    hosts = hosts_dir(tmp_path / "probe-hosts", {registries.plain: f'server = "http://{registries.plain}"\n'})
    return pull(hosts, probe, f"{registries.plain}/busybox:latest").layers[0].digest


def test_corrupt_blob(registries: Registries, stub_registry: StubRegistry, store: ContentStore, tmp_path: Path) -> None:
    """A layer served with wrong bytes fails digest_mismatch; the layer is not stored and no temp file remains."""
    layer = busybox_layer(registries, store, tmp_path)
    stub_registry.faults[layer] = "corrupt"
    with pytest.raises(PullError) as info:
        pull(stub_hosts(tmp_path, stub_registry), store, f"{stub_registry.address}/busybox:latest")
    assert info.value.reason == "digest_mismatch"
    assert not store.has(layer)
    assert_nothing_partial(store)


def test_registry_500(registries: Registries, stub_registry: StubRegistry, store: ContentStore, tmp_path: Path) -> None:
    """A blob answering 500 is retried `retries` times with backoff, then fails registry_error."""
    layer = busybox_layer(registries, store, tmp_path)
    stub_registry.faults[layer] = "500"
    with pytest.raises(PullError) as info:
        pull(stub_hosts(tmp_path, stub_registry), store, f"{stub_registry.address}/busybox:latest", retries=2)
    assert info.value.reason == "registry_error" and "500" in str(info.value)
    assert stub_registry.hits[f"/v2/busybox/blobs/{layer}"] == 3
    assert_nothing_partial(store)


def test_stalled_body(registries: Registries, stub_registry: StubRegistry, store: ContentStore, tmp_path: Path) -> None:
    """A body that stops half-way fails no_progress after the no-progress timeout, keeping nothing."""
    layer = busybox_layer(registries, store, tmp_path)
    stub_registry.faults[layer] = "stall"
    started = time.monotonic()
    with pytest.raises(PullError) as info:
        pull(stub_hosts(tmp_path, stub_registry), store, f"{stub_registry.address}/busybox:latest", no_progress_timeout=1.0)
    assert info.value.reason == "no_progress"
    assert time.monotonic() - started < 10
    assert not store.has(layer)
    assert_nothing_partial(store)


def test_unknown_media_type(stub_registry: StubRegistry, store: ContentStore, tmp_path: Path) -> None:
    """A manifest of an unknown media type fails bad_media_type and stores nothing."""
    stub_registry.manifests["busybox:weird"] = (
        b'{"schemaVersion": 2, "mediaType": "application/vnd.example.weird+json"}',
        "application/vnd.example.weird+json",
    )
    with pytest.raises(PullError) as info:
        pull(stub_hosts(tmp_path, stub_registry), store, f"{stub_registry.address}/busybox:weird")
    assert info.value.reason == "bad_media_type" and "application/vnd.example.weird+json" in str(info.value)
    assert store.digests() == set()
