"""hosts.toml as containerd reads it, against the two real local registries
(127.0.0.1:5000 plain HTTP, 127.0.0.1:5443 TLS + basic auth) and the stub
registry in front of the plain one (it counts what reaches it).

The rules each test checks: a hosts.toml's ``server = "http://..."`` and
``http://`` mirrors are honoured for any namespace; mirrors are tried in the
listed order, then the namespace's upstream unless ``server`` names
something else; an ``http://`` host with TLS settings is tried over HTTPS
first; mirrors are told the namespace (``ns=``). The last test runs a real
daemon and crictl.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from daemon_fixture import Daemon, daemon_factory  # noqa: F401 (fixture)
from dockyard.cri.content.store import ContentStore
from dockyard.cri.errors import PullError
from dockyard.cri.image.registry.auth import Credentials
from registry_fixture import (  # noqa: F401 (fixtures)
    Registries,
    StubRegistry,
    _stub_server,
    registries,
    stub_registry,
)
from test_registry_pull import hosts_dir, pull

KIND = "kind-registry:5000"  # kind's documented local registry; no such host here


def dead_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(str(tmp_path / "content"))


def test_server_http_for_any_namespace(registries: Registries, store: ContentStore, tmp_path: Path) -> None:
    """server = "http://..." sends a non-loopback namespace to a plain-HTTP registry."""
    hosts = hosts_dir(tmp_path, {KIND: f'server = "http://{registries.plain}"\n'})
    image = pull(hosts, store, f"{KIND}/busybox:latest")
    assert image.repo_digest.startswith(f"{KIND}/busybox@sha256:")
    assert store.has(image.layers[0].digest)


def test_mirror_first_and_told_the_namespace(registries: Registries, stub_registry: StubRegistry, store: ContentStore,
                                             tmp_path: Path) -> None:
    """An http:// mirror listed first serves the pull; its requests carry ns=<namespace>."""
    text = f'server = "http://{registries.plain}"\n[host."http://{stub_registry.address}"]\n'
    image = pull(hosts_dir(tmp_path, {KIND: text}), store, f"{KIND}/busybox:latest")
    assert stub_registry.hits["/v2/busybox/manifests/latest"] == 1
    assert stub_registry.hits[f"/v2/busybox/blobs/{image.layers[0].digest}"] == 1
    assert "ns=kind-registry%3A5000" in stub_registry.queries


def test_mirrors_in_order_then_upstream(stub_registry: StubRegistry, store: ContentStore, tmp_path: Path) -> None:
    """No server: after the mirrors (both dead) the namespace's own registry serves the pull, over
    HTTPS first and then plain HTTP since it is on loopback."""
    text = f'[host."http://127.0.0.1:{dead_port()}"]\n[host."http://127.0.0.1:{dead_port()}"]\n'
    upstream = stub_registry.address
    image = pull(hosts_dir(tmp_path, {upstream: text}), store, f"{upstream}/busybox:latest")
    assert image.repo_digest.startswith(f"{upstream}/busybox@")
    assert stub_registry.hits["/v2/busybox/manifests/latest"] == 1
    assert not any("ns=" in q for q in stub_registry.queries)  # it is the namespace itself


def test_server_elsewhere_never_reaches_upstream(registries: Registries, stub_registry: StubRegistry,
                                                 store: ContentStore, tmp_path: Path) -> None:
    """With server set, the upstream of the namespace is not consulted even when a mirror fails."""
    upstream = stub_registry.address
    text = f'server = "http://{registries.plain}"\n[host."http://127.0.0.1:{dead_port()}"]\n'
    image = pull(hosts_dir(tmp_path, {upstream: text}), store, f"{upstream}/busybox:latest")
    assert store.has(image.layers[0].digest)
    assert sum(stub_registry.hits.values()) == 0


def test_all_hosts_fail_names_the_last(store: ContentStore, tmp_path: Path) -> None:
    """When every configured host fails, the error is the last host's and nothing is stored."""
    last = dead_port()
    text = f'server = "http://127.0.0.1:{last}"\n[host."http://127.0.0.1:{dead_port()}"]\n'
    with pytest.raises(PullError) as info:
        pull(hosts_dir(tmp_path, {KIND: text}), store, f"{KIND}/busybox:latest")
    assert info.value.reason == "registry_error" and f"127.0.0.1:{last}" in str(info.value)
    assert store.digests() == set()


def test_tls_auth_registry_as_mirror(registries: Registries, store: ContentStore, tmp_path: Path) -> None:
    """The TLS + basic-auth registry as a mirror of another namespace, with its CA from hosts.toml."""
    text = (f'server = "http://127.0.0.1:{dead_port()}"\n'
            f'[host."https://{registries.tls}"]\n  capabilities = ["pull", "resolve"]\n  ca = "{registries.ca}"\n')
    image = pull(hosts_dir(tmp_path, {KIND: text}), store, f"{KIND}/busybox:latest",
                 Credentials(registries.user, registries.password))
    assert store.has(image.layers[0].digest)


def test_http_host_with_tls_settings_tries_https_first(registries: Registries, store: ContentStore,
                                                       tmp_path: Path) -> None:
    """An http:// host with a CA is tried over HTTPS first (the TLS registry answers there) and, with
    skip_verify on a plain registry, falls back to HTTP: containerd's HTTP fallback."""
    creds = Credentials(registries.user, registries.password)
    tls = hosts_dir(tmp_path / "a", {KIND: f'server = "http://{registries.tls}"\nca = "{registries.ca}"\n'})
    assert store.has(pull(tls, store, f"{KIND}/busybox:latest", creds).layers[0].digest)
    plain = hosts_dir(tmp_path / "b", {KIND: f'server = "http://{registries.plain}"\nskip_verify = true\n'})
    other = ContentStore(str(tmp_path / "content-b"))
    assert other.has(pull(plain, other, f"{KIND}/busybox:latest").layers[0].digest)


def test_crictl_pull_through_kind_registry(registries: Registries, daemon_factory: object) -> None:  # noqa: F811
    """End to end: dockyardd with kind's local-registry hosts.toml pulls kind-registry:5000/busybox for crictl."""
    daemon: Daemon = daemon_factory()  # type: ignore[operator]
    (daemon.certs / KIND).mkdir()
    (daemon.certs / KIND / "hosts.toml").write_text(f'[host."http://{registries.plain}"]\n  capabilities = ["pull", "resolve"]\n')
    daemon.start()
    daemon.crictl("pull", f"{KIND}/busybox:latest")
    listed = daemon.crictl("images", "-o", "json").stdout
    assert f"{KIND}/busybox:latest" in listed
