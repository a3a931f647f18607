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
class CniConfig:
    conf_dir: str = "/etc/cni/net.d"
    bin_dirs: tuple[str, ...] = ("/usr/lib/cni", "/opt/cni/bin")
    # "" = <root_dir>/cni (Config.cni_cache_dir resolves it).
    cache_dir: str = ""


@dataclass(frozen=True, slots=True)
class RuntimeHandler:
    """One runtime handler: the OCI runtime binary a pod's shim runs, and its options.

    ``binary`` is an absolute path or a bare name looked up on PATH and then
    next to the daemon's Python (a venv's bin dir).  ``root`` is the runtime's
    ``--root`` state dir ("" = <state_dir>/runtimes/<handler name>).

    ``private_cgroup_unified_umount``: run every runtime call in a private
    mount namespace in which /sys/fs/cgroup/unified is unmounted.  Why: on a
    hybrid host (v1 controllers plus a cgroup2 mount at unified) crun 1.8
    detects the hybrid layout and fails; without the unified mount it sees a
    plain v1 host and works.  The unmount stays inside that namespace, so
    the host's cgroup mounts are never touched.
    """

    binary: str
    root: str = ""
    private_cgroup_unified_umount: bool = False
    # ociVersion written into config.json for this runtime ("" = the spec
    # generator's own): crun 1.8 refuses any version but 1.0.x.
    oci_version: str = ""


DEFAULT_HANDLERS: Mapping[str, RuntimeHandler] = {
    "dockyard-runc": RuntimeHandler("dockyard-runc"),
    "runc": RuntimeHandler("/usr/sbin/runc"),
    "crun": RuntimeHandler("/usr/bin/crun", private_cgroup_unified_umount=True, oci_version="1.0.2"),
}


@dataclass(frozen=True, slots=True)
class RuntimesConfig:
    # The handler of a pod whose runtime_handler is "" (also reachable as "default").
    default: str = "dockyard-runc"
    handlers: Mapping[str, RuntimeHandler] = field(default_factory=lambda: dict(DEFAULT_HANDLERS))

    def resolve(self, name: str) -> tuple[str, RuntimeHandler]:
        """Handler name as CRI gives it ("" and "default" mean the default) -> (name, handler)."""
        actual = self.default if name in ("", "default") else name
        handler = self.handlers.get(actual)
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            raise InvalidArgument(f"unknown runtime handler {name!r} (configured: {known})")
        return actual, handler


@dataclass(frozen=True, slots=True)
class StreamServerSettings:
    """Where the streaming server (Exec/Attach/PortForward URLs) listens.

    ``port`` 0 is an ephemeral port (the URLs name the one the kernel gave).
    TLS is on when ``tls_cert`` and ``tls_key`` are both set (PEM files); a
    token in a URL is good for one use within ``token_ttl``."""

    address: str = "127.0.0.1"
    port: int = 0
    tls_cert: str = ""
    tls_key: str = ""
    token_ttl: float = 60.0


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
    cni: CniConfig = field(default_factory=CniConfig)
    runtimes: RuntimesConfig = field(default_factory=RuntimesConfig)
    # "" = dockyard-shim on PATH or next to the daemon's Python.
    shim_binary: str = "dockyard-shim"
    # Shims started ahead for the default handler's next pods (cri/shims.py:
    # a pod adopts one instead of waiting for an interpreter to start).
    spare_shims: int = 1
    cgroup_parent: str = "/dockyard"
    # "cgroupfs": the runtimes make cgroup dirs under cgroup_parent (a path);
    # "systemd": they ask systemd for scope units (--systemd-cgroup) in the
    # pod's slice under cgroup_parent (a slice name, "dockyard.slice" by default).
    cgroup_driver: str = "cgroupfs"
    restrict_oom_score_adj: bool = False
    stream_server: StreamServerSettings = field(default_factory=StreamServerSettings)
    # CDI spec directories, lowest priority first (cri/oci/cdi.py).
    cdi_spec_dirs: tuple[str, ...] = ("/etc/cdi", "/var/run/cdi")
    # The admin socket of the `dockyard` command; "" = <state_dir>/admin.sock.
    admin_socket: str = ""
    # Where cAdvisor's containerd API subset is served (cri/cadvisor_endpoint.py); "" = off.
    cadvisor_socket: str = ""

    @property
    def admin_socket_path(self) -> str:
        return self.admin_socket or f"{self.state_dir.rstrip('/')}/admin.sock"

    @property
    def cni_cache_dir(self) -> str:
        return self.cni.cache_dir or f"{self.root_dir.rstrip('/')}/cni"

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


def parse_bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"config key {key}: expected true or false, got {value!r}")
    return value


def parse_abs_path_or_empty(value: object, key: str) -> str:
    if value == "":
        return ""
    return parse_abs_path(value, key)


def parse_binary(value: object, key: str) -> str:
    """An absolute path or a bare command name (no slash), looked up when used."""
    text = parse_nonempty_str(value, key)
    if not text.startswith("/") and "/" in text:
        raise InvalidArgument(f"config key {key}: expected an absolute path or a bare command name, got {value!r}")
    return text


def parse_cgroup_parent(value: object, key: str) -> str:
    """A cgroupfs path, or a slice name (``kubepods.slice``) for the systemd
    driver; which one the driver wants is checked with it (cgroup_parent_for)."""
    text = parse_nonempty_str(value, key)
    if text.startswith("/"):
        if ".." in text.split("/"):
            raise InvalidArgument(f"config key {key}: {value!r} must not contain '..'")
        return text.rstrip("/") or "/"
    return text


CGROUP_DRIVERS = ("cgroupfs", "systemd")
DEFAULT_SLICE = "dockyard.slice"


def parse_cgroup_driver(value: object, key: str) -> str:
    if value not in CGROUP_DRIVERS:
        raise InvalidArgument(f"config key {key}: expected one of {', '.join(CGROUP_DRIVERS)}, got {value!r}")
    return str(value)


def cgroup_parent_for(driver: str, parent: str | None) -> str:
    """The cgroup_parent a driver takes: a path for cgroupfs, a slice name for
    systemd (whose default, with no cgroup_parent given, is dockyard.slice)."""
    if driver == "systemd":
        if parent is None:
            return DEFAULT_SLICE
        from dockyard.runtime.kernel.cgroupfs.systemd_path import expand_slice
        from dockyard.runtime.kernel.errors import InvalidSpec

        try:
            expand_slice(parent, "cgroup_parent")
        except InvalidSpec as err:
            raise InvalidArgument(f"config key cgroup_parent: with cgroup_driver systemd, {err.detail}") from err
        return parent
    if parent is None:
        return "/dockyard"  # Config's default
    if not parent.startswith("/"):
        raise InvalidArgument(f"config key cgroup_parent: with cgroup_driver cgroupfs, expected an absolute path, "
                              f"got {parent!r}")
    return parent


def parse_oci_version(value: object, key: str) -> str:
    if value == "":
        return ""
    if not isinstance(value, str) or not re.fullmatch(r"1\.\d+\.\d+(-[0-9A-Za-z.-]+)?", value):
        raise InvalidArgument(f"config key {key}: expected an OCI spec version like 1.0.2, got {value!r}")
    return value


def parse_path_list(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidArgument(f"config key {key}: expected a non-empty list of absolute paths, got {value!r}")
    return tuple(parse_abs_path(v, f"{key}[{i}]") for i, v in enumerate(value))


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
_CNI_KEYS: dict[str, Callable[[object, str], Any]] = {
    "conf_dir": parse_abs_path,
    "bin_dirs": parse_path_list,
    "cache_dir": parse_abs_path_or_empty,
}
_HANDLER_KEYS: dict[str, Callable[[object, str], Any]] = {
    "binary": parse_binary,
    "root": parse_abs_path_or_empty,
    "private_cgroup_unified_umount": parse_bool,
    "oci_version": parse_oci_version,
}
_HANDLER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]*")


def parse_handlers(value: object, key: str) -> Mapping[str, RuntimeHandler]:
    result: dict[str, RuntimeHandler] = {}
    for name, entry in _mapping(value, key).items():
        where = f"{key}.{name}"
        if not _HANDLER_NAME.fullmatch(name) or name == "default":
            raise InvalidArgument(f"config key {where}: {name!r} is not a valid handler name")
        body = _mapping(entry, where)
        _check_keys(body, _HANDLER_KEYS, where)
        if "binary" not in body:
            raise InvalidArgument(f"config key {where}.binary is required")
        parsed = {k: _HANDLER_KEYS[k](raw, f"{where}.{k}") for k, raw in body.items()}
        result[name] = RuntimeHandler(**parsed)
    if not result:
        raise InvalidArgument(f"config key {key}: at least one runtime handler is needed")
    return result


def parse_runtimes(value: object, key: str) -> RuntimesConfig:
    body = _mapping(value, key)
    _check_keys(body, {"default": None, "handlers": None}, key)
    handlers = parse_handlers(body["handlers"], f"{key}.handlers") if "handlers" in body else dict(DEFAULT_HANDLERS)
    default = parse_nonempty_str(body.get("default", RuntimesConfig().default), f"{key}.default")
    if default not in handlers:
        raise InvalidArgument(
            f"config key {key}.default: {default!r} is not among the handlers ({', '.join(sorted(handlers))})"
        )
    return RuntimesConfig(default=default, handlers=handlers)


def _port(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise InvalidArgument(f"config key {key}: expected a TCP port 0-65535 (0: ephemeral), got {value!r}")
    return value


_STREAM_KEYS: dict[str, Callable[[object, str], Any]] = {
    "address": parse_nonempty_str,
    "port": _port,
    "tls_cert": parse_abs_path_or_empty,
    "tls_key": parse_abs_path_or_empty,
    "token_ttl": parse_duration,
}


def parse_stream_server(value: object, key: str) -> StreamServerSettings:
    body = _mapping(value, key)
    _check_keys(body, _STREAM_KEYS, key)
    settings = replace(StreamServerSettings(), **{k: _STREAM_KEYS[k](raw, f"{key}.{k}") for k, raw in body.items()})
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise InvalidArgument(f"config key {key}: tls_cert and tls_key go together (both set for TLS, or neither)")
    return settings


_ADMIN_KEYS: dict[str, tuple[str, Callable[[object, str], Any]]] = {
    "socket": ("admin_socket", parse_abs_path_or_empty),
}

_CADVISOR_KEYS: dict[str, tuple[str, Callable[[object, str], Any]]] = {
    "socket": ("cadvisor_socket", parse_abs_path_or_empty),
}


def parse_cni(value: object, key: str) -> CniConfig:
    body = _mapping(value, key)
    _check_keys(body, _CNI_KEYS, key)
    return replace(CniConfig(), **{k: _CNI_KEYS[k](raw, f"{key}.{k}") for k, raw in body.items()})


_TOP_KEYS: dict[str, Callable[[object, str], Any]] = {
    "cni": parse_cni,
    "runtimes": parse_runtimes,
    "shim_binary": parse_binary,
    "spare_shims": _int_at_least(0),
    "cgroup_parent": parse_cgroup_parent,
    "cgroup_driver": parse_cgroup_driver,
    "restrict_oom_score_adj": parse_bool,
    "stream_server": parse_stream_server,
    "root_dir": parse_abs_path,
    "state_dir": parse_abs_path,
    "metrics_address": parse_address,
    "pause_image": parse_nonempty_str,
    "log_level": parse_log_level,
    "cdi_spec_dirs": parse_path_list,
}


def parse_config(data: object) -> Config:
    """Parsed YAML (a mapping, or None for an empty file) -> Config."""
    top = _mapping(data, "<top level>")
    _check_keys(top, {**_TOP_KEYS, "socket": None, "registry": None, "admin": None, "cadvisor": None}, "")
    values: dict[str, Any] = {}
    for name, raw in top.items():
        if name in _TOP_KEYS:
            values[name] = _TOP_KEYS[name](raw, name)
    socket = _mapping(top.get("socket"), "socket")
    _check_keys(socket, _SOCKET_KEYS, "socket")
    for name, raw in socket.items():
        attr, parse = _SOCKET_KEYS[name]
        values[attr] = parse(raw, f"socket.{name}")
    admin = _mapping(top.get("admin"), "admin")
    _check_keys(admin, _ADMIN_KEYS, "admin")
    for name, raw in admin.items():
        attr, parse = _ADMIN_KEYS[name]
        values[attr] = parse(raw, f"admin.{name}")
    cadvisor = _mapping(top.get("cadvisor"), "cadvisor")
    _check_keys(cadvisor, _CADVISOR_KEYS, "cadvisor")
    for name, raw in cadvisor.items():
        attr, parse = _CADVISOR_KEYS[name]
        values[attr] = parse(raw, f"cadvisor.{name}")
    registry = _mapping(top.get("registry"), "registry")
    _check_keys(registry, _REGISTRY_KEYS, "registry")
    reg_values = {name: _REGISTRY_KEYS[name](raw, f"registry.{name}") for name, raw in registry.items()}
    values["registry"] = replace(RegistryConfig(), **reg_values)
    values["cgroup_parent"] = cgroup_parent_for(values.get("cgroup_driver", "cgroupfs"),
                                                values.get("cgroup_parent"))
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
        "pause_image", "log_level", "registry", "cni", "runtimes", "shim_binary", "spare_shims", "cgroup_parent",
        "cgroup_driver", "restrict_oom_score_adj", "stream_server", "cdi_spec_dirs", "admin_socket",
        "cadvisor_socket",
    }, "render_default is out of date with Config"
    st = c.stream_server
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
cni:
  # CNI network configs (*.conflist, *.conf); the first one by name is used,
  # re-read whenever the directory changes.
  conf_dir: {c.cni.conf_dir}
  # Where the plugin binaries are looked up, in order.
  bin_dirs: [{", ".join(c.cni.bin_dirs)}]
  # Cached ADD results (for DEL); "" means <root_dir>/cni.
  cache_dir: "{c.cni.cache_dir}"
runtimes:
  # The handler of pods that name none ("" or "default").
  default: {c.runtimes.default}
  handlers:
{_render_handlers(c.runtimes.handlers)}\
# The per-pod shim (a path, or a command on PATH / next to dockyardd's Python).
shim_binary: {c.shim_binary}
# Shims kept started ahead for the default handler's next pods: a new pod
# adopts one instead of waiting for a fresh interpreter (0: none).
spare_shims: {c.spare_shims}
# cgroupfs: the runtimes make cgroup dirs themselves; systemd: they ask
# systemd for a scope unit per container (--systemd-cgroup), in a slice per
# pod.  kubelet reads it (RuntimeConfig) and follows.
cgroup_driver: {c.cgroup_driver}
# Pod cgroups go under this: a cgroupfs path, or with the systemd driver a
# slice name (default dockyard.slice: pods in dockyard-pod<id>.slice).
cgroup_parent: {c.cgroup_parent}
# Clamp negative oom_score_adj values (the pause container's -998) to the
# daemon's own value, for a daemon without CAP_SYS_RESOURCE (containerd's
# restrict_oom_score_adj); when false such a pod fails with a clear error.
restrict_oom_score_adj: {str(c.restrict_oom_score_adj).lower()}
# The streaming server behind Exec, Attach and PortForward (kubelet and
# crictl connect to the URLs these RPCs return).
stream_server:
  address: {st.address}
  # 0: an ephemeral port, named in each URL.
  port: {st.port}
  # PEM certificate and key: both set serves HTTPS, neither plain HTTP.
  tls_cert: "{st.tls_cert}"
  tls_key: "{st.tls_key}"
  # How long a URL's single-use token stays valid.
  token_ttl: {format_duration(st.token_ttl)}
# Where CDI spec files (*.json, *.yaml) are read from when a container asks
# for a CDI device; a later directory's device hides the same name in an
# earlier one.
cdi_spec_dirs: [{", ".join(c.cdi_spec_dirs)}]
# The `dockyard` admin command (images import/export, ls, info) talks to
# dockyardd on this unix socket, which only root may open; "" means
# <state_dir>/admin.sock.
admin:
  socket: "{c.admin_socket}"
# The few containerd API calls a kubelet's cAdvisor makes (container labels,
# task pid, version), answered from dockyardd's records, so that the Summary
# API has pod network and process stats and /metrics/cadvisor has series for
# dockyardd's containers. cAdvisor asks /run/containerd/containerd.sock (its
# --containerd flag): set that here on a node where containerd does not run.
# "" = off.
cadvisor:
  socket: "{c.cadvisor_socket}"
"""


def _render_handlers(handlers: Mapping[str, RuntimeHandler]) -> str:
    lines: list[str] = []
    for name, h in handlers.items():
        lines += [
            f"    {name}:",
            f"      binary: {h.binary}",
            "      # The runtime's --root; \"\" means <state_dir>/runtimes/<handler>.",
            f"      root: \"{h.root}\"",
            "      # Run the runtime with /sys/fs/cgroup/unified unmounted in a private",
            "      # mount namespace (crun 1.8 refuses a hybrid v1+v2 host).",
            f"      private_cgroup_unified_umount: {str(h.private_cgroup_unified_umount).lower()}",
            "      # ociVersion written into config.json (\"\" = the generator's own).",
            f"      oci_version: \"{h.oci_version}\"",
        ]
    return "\n".join(lines) + "\n"
