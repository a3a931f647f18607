"""dockyardd's configuration: a YAML file whose every key has a built-in default.

The loader is pure: ``parse_config(mapping)`` turns the parsed YAML into a
frozen ``Config`` or raises ``InvalidArgument`` naming the offending key by
its dotted path (``registry.max_concurrent_downloads``).  An unknown key is an
error rather than a warning, because a misspelt key silently falling back to
its default is how a node ends up pulling from the wrong registry.

``render_default()`` prints the whole default config; ``deploy/dockyard.yaml``
is that text, byte for byte (a unit test checks it).

Durations are written like containerd's (``30s``, ``5m``, ``1h30m``,
``250ms``) or as a plain number of seconds.  The socket mode is an octal
string (``"0660"``) because YAML 1.1 reads a bare ``0660`` as the integer 432,
which the loader also accepts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import yaml

from dockyard.cri.errors import InvalidArgument

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, slots=True)
class RegistryCredential:
    """Credentials the daemon uses for one registry host when the CRI call
    brings none.  ``auth`` is base64("user:password") as in docker's config."""

    username: str = ""
    password: str = ""
    auth: str = ""
    identity_token: str = ""

    def __repr__(self) -> str:
        # Never let a credential reach a log line through a repr.
        return f"RegistryCredential(username={self.username!r}, ...)"


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    config_path: str = "/etc/dockyard/certs.d"
    credentials: Mapping[str, RegistryCredential] = field(default_factory=dict)
    request_timeout: float = 30.0
    retries: int = 3
    image_pull_progress_timeout: float = 300.0
    max_concurrent_downloads: int = 3


@dataclass(frozen=True, slots=True)
class Config:
    socket_path: str = "/run/dockyard/dockyard.sock"
    socket_mode: int = 0o660
    root_dir: str = "/var/lib/dockyard"
    state_dir: str = "/run/dockyard"
    metrics_address: str = "127.0.0.1:1338"
    pause_image: str = "registry.k8s.io/pause:3.10"
    log_level: str = "info"
    registry: RegistryConfig = field(default_factory=RegistryConfig)

    @property
    def metrics_host_port(self) -> tuple[str, int]:
        return split_host_port(self.metrics_address, "metrics_address")


# --- value parsers (pure): each takes the raw YAML value and the dotted key ---

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object, key: str) -> float:
    """``"1m30s"`` -> 90.0; numbers are seconds; must be > 0."""
    if isinstance(value, bool):
        raise InvalidArgument(f"config key {key}: expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and value:
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(value):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(value):
            raise InvalidArgument(
                f"config key {key}: {value!r} is not a duration (like 30s, 5m, 1h30m, 250ms)"
            )
    else:
        raise InvalidArgument(f"config key {key}: expected a duration, got {value!r}")
    if seconds <= 0:
        raise InvalidArgument(f"config key {key}: duration must be positive, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds < 1 or seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs or not text else "")


def parse_mode(value: object, key: str) -> int:
    if isinstance(value, bool):
        raise InvalidArgument(f"config key {key}: expected an octal mode like \"0660\", got {value!r}")
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str) and re.fullmatch(r"0?[0-7]{3,4}", value):
        mode = int(value, 8)
    else:
        raise InvalidArgument(f"config key {key}: expected an octal mode like \"0660\", got {value!r}")
    if not 0 <= mode <= 0o7777:
        raise InvalidArgument(f"config key {key}: mode {value!r} out of range")
    return mode


def parse_abs_path(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidArgument(f"config key {key}: expected an absolute path, got {value!r}")
    return value


def parse_nonempty_str(value: object, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"config key {key}: expected a non-empty string, got {value!r}")
    return value


def parse_str(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"config key {key}: expected a string, got {value!r}")
    return value


def _int_at_least(low: int) -> Callable[[object, str], int]:
    def parse(value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidArgument(f"config key {key}: expected an integer >= {low}, got {value!r}")
        return value

    return parse


def parse_log_level(value: object, key: str) -> str:
    if not isinstance(value, str) or value.lower() not in LOG_LEVELS:
        raise InvalidArgument(
            f"config key {key}: expected one of {', '.join(LOG_LEVELS)}, got {value!r}"
        )
    return value.lower()


def split_host_port(value: str, key: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"config key {key}: expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


def parse_address(value: object, key: str) -> str:
    text = parse_nonempty_str(value, key)
    split_host_port(text, key)
    return text


def _mapping(value: object, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidArgument(f"config key {key}: expected a mapping, got {value!r}")
    return value


def _check_keys(data: Mapping[str, Any], allowed: Mapping[str, object], prefix: str) -> None:
    for name in data:
        if name not in allowed:
            where = f"{prefix}.{name}" if prefix else name
            raise InvalidArgument(
                f"unknown config key {where} (known: {', '.join(sorted(allowed))})"
            )


_CREDENTIAL_KEYS: dict[str, Callable[[object, str], str]] = {
    "username": parse_str,
    "password": parse_str,
    "auth": parse_str,
    "identity_token": parse_str,
}


def parse_credentials(value: object, key: str) -> Mapping[str, RegistryCredential]:
    result: dict[str, RegistryCredential] = {}
    for host, entry in _mapping(value, key).items():
        where = f"{key}.{host}"
        body = _mapping(entry, where)
        _check_keys(body, _CREDENTIAL_KEYS, where)
        parsed = {name: _CREDENTIAL_KEYS[name](raw, f"{where}.{name}") for name, raw in body.items()}
        cred = RegistryCredential(**parsed)
        if not (cred.username or cred.auth or cred.identity_token):
            raise InvalidArgument(
                f"config key {where}: needs username/password, auth or identity_token"
            )
        result[host] = cred
    return result


# YAML key -> (Config field, parser).  The socket lives under its own block
# in YAML to keep path and mode together.
_REGISTRY_KEYS: dict[str, Callable[[object, str], Any]] = {
    "config_path": parse_abs_path,
    "credentials": parse_credentials,
    "request_timeout": parse_duration,
    "retries": _int_at_least(0),
    "image_pull_progress_timeout": parse_duration,
    "max_concurrent_downloads": _int_at_least(1),
}
_SOCKET_KEYS: dict[str, tuple[str, Callable[[object, str], Any]]] = {
    "path": ("socket_path", parse_abs_path),
    "mode": ("socket_mode", parse_mode),
}
_TOP_KEYS: dict[str, Callable[[object, str], Any]] = {
    "root_dir": parse_abs_path,
    "state_dir": parse_abs_path,
    "metrics_address": parse_address,
    "pause_image": parse_nonempty_str,
    "log_level": parse_log_level,
}


def parse_config(data: object) -> Config:
    """Parsed YAML (a mapping, or None for an empty file) -> Config."""
    top = _mapping(data, "<top level>")
    _check_keys(top, {**_TOP_KEYS, "socket": None, "registry": None}, "")
    values: dict[str, Any] = {}
    for name, raw in top.items():
        if name in _TOP_KEYS:
            values[name] = _TOP_KEYS[name](raw, name)
    socket = _mapping(top.get("socket"), "socket")
    _check_keys(socket, _SOCKET_KEYS, "socket")
    for name, raw in socket.items():
        attr, parse = _SOCKET_KEYS[name]
        values[attr] = parse(raw, f"socket.{name}")
    registry = _mapping(top.get("registry"), "registry")
    _check_keys(registry, _REGISTRY_KEYS, "registry")
    reg_values = {name: _REGISTRY_KEYS[name](raw, f"registry.{name}") for name, raw in registry.items()}
    values["registry"] = replace(RegistryConfig(), **reg_values)
    return replace(Config(), **values)


def parse_config_text(text: str, source: str) -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InvalidArgument(f"config file {source}: not valid YAML: {err}") from err
    return parse_config(data)


def load_config(path: str | None) -> Config:
    """Read ``path`` (None: built-in defaults only)."""
    if path is None:
        return Config()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise InvalidArgument(f"config file {path}: {err.strerror}") from err
    return parse_config_text(text, path)


def render_default() -> str:
    """The full default config as commented YAML (what ``dockyardd config default`` prints)."""
    c = Config()
    r = c.registry
    assert {f.name for f in fields(Config)} == {
        "socket_path", "socket_mode", "root_dir", "state_dir", "metrics_address",
        "pause_image", "log_level", "registry",
    }, "render_default is out of date with Config"
    return f"""\
# dockyardd configuration. Every key is optional; these are the defaults.
socket:
  # The CRI gRPC endpoint (point kubelet/crictl at unix://<path>).
  path: {c.socket_path}
  # Octal, quoted: YAML reads a bare 0660 as a decimal-looking integer.
  mode: "{c.socket_mode:04o}"
# Persistent data: content store, snapshots, image metadata.
root_dir: {c.root_dir}
# Runtime state that does not survive a reboot.
state_dir: {c.state_dir}
# Prometheus /metrics listens here (host:port).
metrics_address: {c.metrics_address}
# The sandbox (pause) image pods are built on.
pause_image: {c.pause_image}
# debug, info, warning or error.
log_level: {c.log_level}
registry:
  # containerd-style hosts.toml directory: <config_path>/<host>/hosts.toml.
  config_path: {r.config_path}
  # Credentials per registry host, used when a pull brings none, e.g.
  #   registry.example.com:
  #     username: user
  #     password: secret
  credentials: {{}}
  # Timeout of each registry request (connect, headers, one read).
  request_timeout: {format_duration(r.request_timeout)}
  # Retries of a failed request (5xx, connection error), with backoff.
  retries: {r.retries}
  # Cancel a pull when no byte arrived for this long (containerd's
  # image_pull_progress_timeout).
  image_pull_progress_timeout: {format_duration(r.image_pull_progress_timeout)}
  # Layers downloaded at once per pull.
  max_concurrent_downloads: {r.max_concurrent_downloads}
"""
