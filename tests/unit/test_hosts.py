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
        # mirrors without server: no upstream fallback (deliberate, see module doc)
        ('[host."https://m1.example"]', "docker.io", ["https://m1.example/v2"]),
        ('[host."http://127.0.0.1:5000"]', "registry.k8s.io", ["http://127.0.0.1:5000/v2"]),
        ('[host."http://localhost:5000"]', "registry.k8s.io", ["http://localhost:5000/v2"]),
    ],
)
def test_urls(text: str, namespace: str, want: list[str]) -> None:
    assert urls(parse_hosts_toml(text.encode(), PATH, namespace)) == want


def test_override_path_keeps_url_path() -> None:
    text = '[host."https://m.example/proxy/api"]\n  override_path = true\n[host."m2.example"]'
    assert urls(parse_hosts_toml(text.encode(), PATH, "x.io")) == ["https://m.example/proxy/api", "https://m2.example/v2"]


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
        ('[host."http://mirror.example"]', "plain HTTP is allowed only to loopback"),
        ('server = "http://10.0.0.1:5000"', "plain HTTP is allowed only to loopback"),
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
    assert urls(config.resolve("registry.k8s.io")) == ["http://127.0.0.1:5000/v2"]
    (tls,) = config.resolve("127.0.0.1:5443")
    assert tls.ca == (str(tmp_path / "127.0.0.1:5443" / "ca.crt"),)
    # no directory and no _default: built-in defaults
    assert urls(config.resolve("docker.io")) == ["https://registry-1.docker.io/v2"]
    assert urls(config.resolve("127.0.0.1:5000")) == ["https://127.0.0.1:5000/v2", "http://127.0.0.1:5000/v2"]
    # _default applies to every namespace without its own directory
    (tmp_path / "_default").mkdir()
    (tmp_path / "_default" / "hosts.toml").write_text('[host."https://mirror.example"]\n')
    assert urls(config.resolve("docker.io")) == ["https://mirror.example/v2"]
    assert urls(config.resolve("registry.k8s.io")) == ["http://127.0.0.1:5000/v2"]


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
