"""hosts.toml (containerd's layout) -> the registry hosts a pull may use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.cri.errors import InvalidArgument
from dockyard.cri.image.registry.hosts import HostsConfig, RegistryHost, is_loopback, parse_hosts_toml

PATH = "/etc/dockyard/certs.d/docker.io/hosts.toml"
BASE = os.path.dirname(PATH)


def urls(hosts: list[RegistryHost]) -> list[str]:
    return [h.url for h in hosts]


@pytest.mark.parametrize(
    ("text", "namespace", "want"),
    [
        # only top-level settings: they apply to the default upstream
        ('skip_verify = true', "docker.io", ["https://registry-1.docker.io/v2"]),
        ('', "quay.io", ["https://quay.io/v2"]),
        ('server = "https://registry.example:8443"', "x.io", ["https://registry.example:8443/v2"]),
        # mirrors first, then an explicit server
        ('server = "https://registry-1.docker.io"\n[host."https://m1.example"]\n[host."https://m2.example/v2"]',
         "docker.io", ["https://m1.example/v2", "https://m2.example/v2", "https://registry-1.docker.io/v2"]),
        # mirrors without server: the namespace's upstream after them (containerd)
        ('[host."https://m1.example"]', "docker.io", ["https://m1.example/v2", "https://registry-1.docker.io/v2"]),
        ('[host."http://127.0.0.1:5000"]', "registry.k8s.io", ["http://127.0.0.1:5000/v2", "https://registry.k8s.io/v2"]),
        ('[host."http://localhost:5000"]', "registry.k8s.io", ["http://localhost:5000/v2", "https://registry.k8s.io/v2"]),
        # a loopback namespace's own upstream: HTTPS, then plain HTTP
        ('[host."http://127.0.0.1:9"]', "127.0.0.1:5000",
         ["http://127.0.0.1:9/v2", "https://127.0.0.1:5000/v2", "http://127.0.0.1:5000/v2"]),
        # server names somewhere else: the upstream is never tried
        ('server = "http://127.0.0.1:5000"\n[host."http://127.0.0.1:9"]', "registry.k8s.io",
         ["http://127.0.0.1:9/v2", "http://127.0.0.1:5000/v2"]),
        # plain HTTP to any host the file names (kind's local registry)
        ('server = "http://kind-registry:5000"', "kind-registry:5000", ["http://kind-registry:5000/v2"]),
        ('[host."http://kind-registry:5000"]', "docker.io", ["http://kind-registry:5000/v2", "https://registry-1.docker.io/v2"]),
        ('server = "http://10.0.0.1:5000"', "x.io", ["http://10.0.0.1:5000/v2"]),
        # http:// with TLS settings (not on port 80): HTTPS first, then HTTP (containerd's fallback)
        ('server = "http://kind-registry:5000"\nskip_verify = true', "kind-registry:5000",
         ["https://kind-registry:5000/v2", "http://kind-registry:5000/v2"]),
        ('[host."http://m.example:80"]\n  ca = "ca.pem"', "x.io", ["http://m.example:80/v2", "https://x.io/v2"]),
        # a server without a scheme is HTTPS; a path gets /v2 unless it has it
        ('server = "registry.example/base/"', "x.io", ["https://registry.example/base/v2"]),
    ],
)
def test_urls(text: str, namespace: str, want: list[str]) -> None:
    assert urls(parse_hosts_toml(text.encode(), PATH, namespace)) == want


def test_override_path_keeps_url_path() -> None:
    text = '[host."https://m.example/proxy/api"]\n  override_path = true\n[host."m2.example"]'
    assert urls(parse_hosts_toml(text.encode(), PATH, "x.io")) == [
        "https://m.example/proxy/api", "https://m2.example/v2", "https://x.io/v2"]


def test_host_settings() -> None:
    text = """
server = "https://registry-1.docker.io"
ca = "upstream.pem"
[host."https://mirror.example"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
  ca = ["/abs/ca.pem", "rel.pem"]
  client = [["c.pem", "k.pem"]]
  [host."https://mirror.example".header]
    x-one = "1"
    x-many = ["a", "b"]
[host."https://pull-only.example"]
  capabilities = ["pull"]
  client = "both.pem"
"""
    mirror, pull_only, server = parse_hosts_toml(text.encode(), PATH, "docker.io")
    assert mirror.host == "mirror.example"
    assert mirror.capabilities == frozenset({"pull", "resolve"})
    assert mirror.skip_verify
    assert mirror.ca == ("/abs/ca.pem", f"{BASE}/rel.pem")
    assert mirror.client == ((f"{BASE}/c.pem", f"{BASE}/k.pem"),)
    assert mirror.headers == (("x-one", "1"), ("x-many", "a"), ("x-many", "b"))
    assert pull_only.can("pull") and not pull_only.can("resolve")
    assert pull_only.client == ((f"{BASE}/both.pem", None),)
    assert server.ca == (f"{BASE}/upstream.pem",)
    assert server.capabilities == frozenset({"pull", "resolve", "push"})
    assert not server.skip_verify


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('server = "https://x', "malformed registry hosts file"),
        ('server = 3', "'server' must be a URL string"),
        ('serer = "https://x"', "unknown key(s) serer"),
        ('[host."https://m"]\ncapabilities = "pull"', "'capabilities' must be a list"),
        ('[host."https://m"]\ncapabilities = ["pull", "fly"]', "unknown capabilities fly"),
        ('[host."https://m"]\nskip_verify = "yes"', "'skip_verify' must be true or false"),
        ('[host."https://m"]\nca = 1', "'ca' must be a path"),
        ('[host."https://m"]\nclient = [["a"]]', "'client' must be"),
        ('[host."https://m"]\nheader = "x"', "'header' must be a table"),
        ('[host."https://m"]\ncapabilites = ["pull"]', "unknown key(s) capabilites"),
        ('[host."ftp://m"]', "not an http(s) URL"),
        ('server = "http://"', "not an http(s) URL"),
        ('[host."https://m"]\ndial_timeout = "soon"', "'dial_timeout' must be a positive duration"),
        ('[host."https://m"]\ndial_timeout = 5', "'dial_timeout' must be a positive duration"),
        ('server = "https://s"\nproxy = "http://p:8080"', "'proxy' is not supported"),
        ('host = 1', "'host' must be a table"),
    ],
)
def test_malformed_names_file(text: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_hosts_toml(text.encode(), PATH, "docker.io")
    assert PATH in str(info.value)
    assert why in str(info.value)


def test_directory_layout(tmp_path: Path) -> None:
    (tmp_path / "registry.k8s.io").mkdir()
    (tmp_path / "registry.k8s.io" / "hosts.toml").write_text('[host."http://127.0.0.1:5000"]\n')
    (tmp_path / "127.0.0.1:5443").mkdir()
    (tmp_path / "127.0.0.1:5443" / "hosts.toml").write_text('server = "https://127.0.0.1:5443"\nca = "ca.crt"\n')
    config = HostsConfig(str(tmp_path))
    assert urls(config.resolve("registry.k8s.io")) == ["http://127.0.0.1:5000/v2", "https://registry.k8s.io/v2"]
    (tls,) = config.resolve("127.0.0.1:5443")
    assert tls.ca == (str(tmp_path / "127.0.0.1:5443" / "ca.crt"),)
    # no directory and no _default: built-in defaults
    assert urls(config.resolve("docker.io")) == ["https://registry-1.docker.io/v2"]
    assert urls(config.resolve("127.0.0.1:5000")) == ["https://127.0.0.1:5000/v2", "http://127.0.0.1:5000/v2"]
    # _default applies to every namespace without its own directory
    (tmp_path / "_default").mkdir()
    (tmp_path / "_default" / "hosts.toml").write_text('[host."https://mirror.example"]\n')
    assert urls(config.resolve("docker.io")) == ["https://mirror.example/v2", "https://registry-1.docker.io/v2"]
    assert urls(config.resolve("quay.io")) == ["https://mirror.example/v2", "https://quay.io/v2"]
    assert urls(config.resolve("registry.k8s.io")) == ["http://127.0.0.1:5000/v2", "https://registry.k8s.io/v2"]


def test_malformed_file_on_disk_named(tmp_path: Path) -> None:
    (tmp_path / "docker.io").mkdir()
    bad = tmp_path / "docker.io" / "hosts.toml"
    bad.write_text("[host.\n")
    with pytest.raises(InvalidArgument) as info:
        HostsConfig(str(tmp_path)).resolve("docker.io")
    assert str(bad) in str(info.value)


def test_no_config_path_uses_defaults() -> None:
    assert urls(HostsConfig(None).resolve("quay.io")) == ["https://quay.io/v2"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True), ("localhost:5000", True), ("127.0.0.1", True), ("127.3.4.5:80", True),
        ("[::1]:5000", True), ("::1", True), ("10.0.0.1", False), ("example.com:5000", False),
        ("128.0.0.1", False), ("localhost.example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_host_port_directory_first(tmp_path: Path) -> None:
    """For host:port, containerd's <host>_<port>_ directory wins over <host:port>, which wins over _default."""
    for name, server in (("reg.example_5000_", "https://a.example"), ("reg.example:5000", "https://b.example"),
                         ("_default", "https://c.example")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "hosts.toml").write_text(f'server = "{server}"\n')
    config = HostsConfig(str(tmp_path))
    assert urls(config.resolve("reg.example:5000")) == ["https://a.example/v2"]
    (tmp_path / "reg.example_5000_" / "hosts.toml").unlink()
    (tmp_path / "reg.example_5000_").rmdir()
    assert urls(config.resolve("reg.example:5000")) == ["https://b.example/v2"]
    assert urls(config.resolve("other.example:5000")) == ["https://c.example/v2"]


def test_directory_without_hosts_toml_reads_docker_cert_files(tmp_path: Path) -> None:
    """A namespace directory with no hosts.toml: the upstream, with Docker's *.crt / *.cert + *.key files;
    _default is not consulted (the first existing directory is the namespace's)."""
    d = tmp_path / "reg.example"
    d.mkdir()
    for name in ("ca.crt", "client.cert", "client.key", "lone.cert", "notes.txt"):
        (d / name).write_text("x")
    (tmp_path / "_default").mkdir()
    (tmp_path / "_default" / "hosts.toml").write_text('server = "https://elsewhere.example"\n')
    (host,) = HostsConfig(str(tmp_path)).resolve("reg.example")
    assert host.url == "https://reg.example/v2"
    assert host.ca == (str(d / "ca.crt"),)
    assert host.client == ((str(d / "client.cert"), str(d / "client.key")), (str(d / "lone.cert"), None))


def test_mirrors_carry_the_namespace() -> None:
    """A host that is not the namespace itself is a mirror: its requests carry ns=<namespace>."""
    text = '[host."https://mirror.example"]\n[host."https://registry-1.docker.io"]'
    mirror, hub, upstream = parse_hosts_toml(text.encode(), PATH, "docker.io")
    assert mirror.namespace == "docker.io"
    assert hub.namespace == "" and upstream.namespace == ""  # docker.io is served by registry-1.docker.io
    (own,) = parse_hosts_toml(b'server = "https://quay.io"', PATH, "quay.io")
    assert own.namespace == ""


def test_upstream_capabilities() -> None:
    """Top-level capabilities restrict an explicit server; the implied upstream always has all three."""
    (server,) = parse_hosts_toml(b'server = "https://s.example"\ncapabilities = ["pull"]', PATH, "x.io")
    assert server.capabilities == frozenset({"pull"})
    (upstream,) = parse_hosts_toml(b'capabilities = ["pull"]\nca = "up.pem"', PATH, "x.io")
    assert upstream.capabilities == frozenset({"pull", "resolve", "push"})
    assert upstream.ca == (f"{BASE}/up.pem",)


def test_http_fallback_keeps_tls_settings_on_the_https_try() -> None:
    https, http = parse_hosts_toml(b'[host."http://m.example:5000"]\n  ca = "m.pem"', PATH, "x.io")[:2]
    assert (https.url, http.url) == ("https://m.example:5000/v2", "http://m.example:5000/v2")
    assert https.ca == http.ca == (f"{BASE}/m.pem",)


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1.0), ("250ms", 0.25), ("1m30s", 90.0), ("1h", 3600.0), ("1.5s", 1.5), ("0s", None), ("5", None),
    ("", None), ("1d", None)])
def test_dial_timeout(text: str, seconds: float | None) -> None:
    """dial_timeout takes Go's duration syntax, as containerd reads it."""
    from dockyard.cri.image.registry.hosts import parse_go_duration

    assert parse_go_duration(text) == seconds
    if seconds is not None:
        (host,) = parse_hosts_toml(f'server = "https://s"\ndial_timeout = "{text}"'.encode(), PATH, "x.io")
        assert host.dial_timeout == seconds
