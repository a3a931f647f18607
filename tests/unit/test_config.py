"""dockyardd config: defaults, parsing, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dockyard.cri.config import (
    Config,
    RegistryConfig,
    RegistryCredential,
    StreamServerSettings,
    format_duration,
    load_config,
    parse_config,
    parse_config_text,
    parse_duration,
    render_default,
)
from dockyard.cri.errors import InvalidArgument

REPO = Path(__file__).resolve().parents[2]


def test_empty_file_gives_defaults() -> None:
    """An empty file (YAML None) and no file at all are the built-in defaults."""
    assert parse_config(None) == Config()
    assert load_config(None) == Config()
    assert Config().socket_path == "/run/dockyard/dockyard.sock"
    assert Config().socket_mode == 0o660
    assert Config().registry.config_path == "/etc/dockyard/certs.d"
    assert Config().pause_image == "registry.k8s.io/pause:3.10"


def test_default_rendering_round_trips() -> None:
    """`dockyardd config default` parses back to exactly the defaults."""
    assert parse_config_text(render_default(), "<default>") == Config()


def test_deploy_file_is_the_default() -> None:
    """deploy/dockyard.yaml is byte for byte what `dockyardd config default` prints."""
    assert (REPO / "deploy" / "dockyard.yaml").read_text() == render_default()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("root_dir: /srv/d", Config(root_dir="/srv/d")),
        ("socket: {path: /tmp/x.sock, mode: '0600'}", Config(socket_path="/tmp/x.sock", socket_mode=0o600)),
        ("socket: {mode: 0660}", Config(socket_mode=0o660)),  # YAML 1.1 octal int
        ("log_level: DEBUG", Config(log_level="debug")),
        ("metrics_address: '[::1]:9000'", Config(metrics_address="[::1]:9000")),
        (
            "registry: {image_pull_progress_timeout: 1m30s, request_timeout: 2.5, retries: 0}",
            Config(registry=RegistryConfig(image_pull_progress_timeout=90.0, request_timeout=2.5, retries=0)),
        ),
        (
            "registry: {credentials: {'127.0.0.1:5443': {username: u, password: p}}}",
            Config(registry=RegistryConfig(credentials={"127.0.0.1:5443": RegistryCredential("u", "p")})),
        ),
        (
            "stream_server: {address: 0.0.0.0, port: 10010, token_ttl: 30s}",
            Config(stream_server=StreamServerSettings(address="0.0.0.0", port=10010, token_ttl=30.0)),
        ),
        (
            "stream_server: {tls_cert: /etc/d/c.pem, tls_key: /etc/d/k.pem}",
            Config(stream_server=StreamServerSettings(tls_cert="/etc/d/c.pem", tls_key="/etc/d/k.pem")),
        ),
        ("cgroup_driver: systemd", Config(cgroup_driver="systemd", cgroup_parent="dockyard.slice")),
        ("{cgroup_driver: systemd, cgroup_parent: kubepods.slice}",
         Config(cgroup_driver="systemd", cgroup_parent="kubepods.slice")),
        ("{cgroup_driver: cgroupfs, cgroup_parent: /kubepods/}", Config(cgroup_parent="/kubepods")),
    ],
)
def test_parse_values(text: str, expected: Config) -> None:
    """Each accepted spelling of a value parses to the typed field."""
    assert parse_config_text(text, "t") == expected


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("rootdir: /x", "rootdir"),
        ("registry: {max_downloads: 3}", "registry.max_downloads"),
        ("socket: {paht: /x}", "socket.paht"),
        ("root_dir: relative/dir", "root_dir"),
        ("socket: {mode: '999'}", "socket.mode"),
        ("log_level: loud", "log_level"),
        ("metrics_address: nohost", "metrics_address"),
        ("registry: {retries: -1}", "registry.retries"),
        ("registry: {retries: true}", "registry.retries"),
        ("registry: {max_concurrent_downloads: 0}", "registry.max_concurrent_downloads"),
        ("spare_shims: -1", "spare_shims"),
        ("spare_shims: yes", "spare_shims"),
        ("registry: {request_timeout: 10 seconds}", "registry.request_timeout"),
        ("registry: {image_pull_progress_timeout: 0s}", "registry.image_pull_progress_timeout"),
        ("registry: {credentials: {h: {user: x}}}", "registry.credentials.h.user"),
        ("registry: {credentials: {h: {password: x}}}", "registry.credentials.h"),
        ("registry: [1, 2]", "registry"),
        ("- a list", "<top level>"),
        ("a: [unclosed", "not valid YAML"),
        ("stream_server: {port: 70000}", "stream_server.port"),
        ("stream_server: {port: true}", "stream_server.port"),
        ("stream_server: {address: ''}", "stream_server.address"),
        ("stream_server: {token_ttl: 0s}", "stream_server.token_ttl"),
        ("stream_server: {tls_cert: /c.pem}", "stream_server: tls_cert and tls_key go together"),
        ("stream_server: {tls_key: rel.pem}", "stream_server.tls_key"),
        ("stream_server: {tls: on}", "stream_server.tls"),
        ("cgroup_driver: systemd-ish", "cgroup_driver"),
        ("{cgroup_driver: systemd, cgroup_parent: /dockyard}", "cgroup_parent: with cgroup_driver systemd"),
        ("{cgroup_driver: systemd, cgroup_parent: a--b.slice}", "cgroup_parent"),
        ("cgroup_parent: dockyard.slice", "cgroup_parent: with cgroup_driver cgroupfs"),
        ("cgroup_parent: /a/../b", "cgroup_parent"),
    ],
)
def test_bad_config_names_the_key(text: str, names: str) -> None:
    """An unknown key or a bad value is an InvalidArgument naming the dotted key."""
    with pytest.raises(InvalidArgument) as info:
        parse_config_text(text, "t")
    assert names in str(info.value)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("250ms", 0.25), (7, 7.0), ("1.5s", 1.5)],
)
def test_durations(raw: object, seconds: float) -> None:
    """containerd-style duration strings and plain numbers are seconds."""
    assert parse_duration(raw, "k") == seconds


@pytest.mark.parametrize("seconds", [30.0, 300.0, 5400.0, 0.25, 3661.0])
def test_duration_format_round_trips(seconds: float) -> None:
    """What render_default prints parses back to the same number."""
    assert parse_duration(format_duration(seconds), "k") == seconds


def test_missing_file_names_it(tmp_path: Path) -> None:
    """A config path that cannot be read stops startup naming the file."""
    with pytest.raises(InvalidArgument, match="nope.yaml"):
        load_config(str(tmp_path / "nope.yaml"))


def test_credentials_never_in_repr() -> None:
    """A credential's repr (log lines, error messages) hides the secret."""
    cred = RegistryCredential(username="u", password="hunter2", auth="c2VjcmV0")
    assert "hunter2" not in repr(cred) and "c2VjcmV0" not in repr(cred)
    assert "hunter2" not in repr(Config(registry=RegistryConfig(credentials={"h": cred})))


def test_default_yaml_is_plain_yaml() -> None:
    """The default text is a mapping with the documented top-level keys."""
    data = yaml.safe_load(render_default())
    assert set(data) == {
        "socket", "root_dir", "state_dir", "metrics_address", "pause_image", "log_level", "registry",
        "cni", "runtimes", "shim_binary", "spare_shims", "cgroup_parent", "cgroup_driver", "restrict_oom_score_adj",
        "stream_server", "cdi_spec_dirs", "admin", "cadvisor",
    }


@pytest.mark.parametrize(("data", "socket"), [
    ({}, ""),
    ({"cadvisor": {"socket": "/run/containerd/containerd.sock"}}, "/run/containerd/containerd.sock"),
])
def test_cadvisor_socket(data: dict[str, object], socket: str) -> None:
    """cAdvisor's containerd API subset is off unless a socket is named."""
    assert parse_config(data).cadvisor_socket == socket


def test_cadvisor_socket_must_be_absolute() -> None:
    with pytest.raises(InvalidArgument, match="cadvisor.socket"):
        parse_config({"cadvisor": {"socket": "relative.sock"}})


@pytest.mark.parametrize(("data", "socket"), [
    ({}, "/run/dockyard/admin.sock"),
    ({"state_dir": "/tmp/st/"}, "/tmp/st/admin.sock"),
    ({"admin": {"socket": "/run/x/adm.sock"}}, "/run/x/adm.sock"),
    ({"admin": {"socket": ""}, "state_dir": "/s"}, "/s/admin.sock"),
])
def test_admin_socket(data: dict[str, object], socket: str) -> None:
    """The admin socket defaults to <state_dir>/admin.sock."""
    assert parse_config(data).admin_socket_path == socket


@pytest.mark.parametrize(("data", "key"), [
    ({"admin": {"socket": "rel.sock"}}, "admin.socket"),
    ({"admin": {"sock": "/x"}}, "admin.sock"),
    ({"admin": "yes"}, "admin"),
])
def test_admin_socket_errors_name_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(InvalidArgument, match=key.replace(".", r"\.")):
        parse_config(data)
