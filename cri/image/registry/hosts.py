"""Registry host configuration in containerd's hosts.toml directory layout.

    <config_path>/<host>_<port>_/hosts.toml    for host:port (tried first)
    <config_path>/<host[:port]>/hosts.toml     for that registry namespace
    <config_path>/_default/hosts.toml          for any namespace without its own

    server = "https://registry-1.docker.io"    # optional
    ca = "ca.crt"                               # top-level settings apply to `server`
    [host."https://mirror.example"]
      capabilities = ["pull", "resolve"]        # default: pull, resolve, push
      skip_verify = false
      ca = "/etc/certs/mirror.pem"              # or a list; relative to the hosts.toml dir
      client = [["cert.pem", "key.pem"]]        # or "both.pem" / ["a.pem"]
      override_path = false                     # true: the URL path is the API root as is
      dial_timeout = "1s"                       # connect timeout (Go duration), for a quick fallback
      [host."https://mirror.example".header]
        x-custom = "value"                      # or a list of values

containerd's rules, which this module follows:

* The first of those directories that *exists* is the namespace's; a
  directory without hosts.toml means the default upstream with the
  certificates found there in Docker's layout (``*.crt`` CAs, ``*.cert``
  client certificates with their ``*.key``).
* The hosts to try are the ``[host]`` entries in the order the file lists
  them, then ``server``; without ``server``, the namespace's own upstream
  (``registry-1.docker.io`` for docker.io, else the namespace over HTTPS).
  So a pull whose mirrors all fail goes upstream unless ``server`` names
  somewhere else. The top-level settings (ca, skip_verify, ...) belong to
  that last entry; its capabilities are all three when ``server`` is unset.
* Any scheme the file writes is honoured: ``http://`` for any host
  (kind's ``http://kind-registry:5000`` is the common case). An
  ``http://`` host that also has TLS settings (ca, client, skip_verify) on
  a port other than 80 is tried over HTTPS first and then over HTTP, as
  containerd's HTTP fallback does.
* A host other than the namespace (a mirror) gets the namespace as the
  ``ns`` query parameter of every request.

Plain HTTP without configuration asking for it: only to loopback
(localhost, 127.0.0.0/8, ::1), where a registry is tried over HTTPS and then
plain HTTP, as docker does. Elsewhere an unconfigured namespace is HTTPS only.

Where this departs from containerd, on purpose: a malformed hosts.toml is an
error naming the file (containerd logs it and silently falls back to the
upstream, which is how a node ends up pulling from where its owner said not
to); a loopback registry's certificate is verified (containerd skips
verification for localhost).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from dockyard.cri.errors import InvalidArgument

DEFAULT_DOCKER_SERVER = "https://registry-1.docker.io"
ALL_CAPABILITIES = frozenset({"pull", "resolve", "push"})


@dataclass(frozen=True, slots=True)
class RegistryHost:
    """One place to send registry requests for a namespace.

    `url` is the API root ("https://mirror.example/v2"); `host` is its
    netloc, which is also the key for per-registry credentials. `namespace`
    is set when the host is not the namespace itself (a mirror): requests
    carry it as ``?ns=``.
    """

    url: str
    host: str
    capabilities: frozenset[str] = ALL_CAPABILITIES
    skip_verify: bool = False
    ca: tuple[str, ...] = ()
    client: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    dial_timeout: float | None = None  # connect timeout; None: the client's request timeout
    namespace: str = ""
    source: str | None = field(default=None, compare=False)  # the hosts.toml, for messages

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    def can(self, capability: str) -> bool:
        return capability in self.capabilities


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1, with or without a port."""
    name = host
    if name.startswith("["):
        name = name[1 : name.index("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_directory_names(namespace: str) -> list[str]:
    """Directories to look in for a namespace, in order (containerd's on unix)."""
    names = []
    colon = namespace.rfind(":")
    if colon > 0:
        names.append(f"{namespace[:colon]}_{namespace[colon + 1:]}_")
    return names + [namespace, "_default"]


class HostsConfig:
    """Reads `<config_path>/<namespace>/hosts.toml` on every resolve, so edits
    apply to the next pull without a restart (as in containerd)."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path

    def resolve(self, namespace: str) -> list[RegistryHost]:
        if self.config_path:
            for name in host_directory_names(namespace):
                directory = os.path.join(self.config_path, name)
                if not os.path.isdir(directory):
                    continue
                path = os.path.join(directory, "hosts.toml")
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except FileNotFoundError:
                    return cert_dir_hosts(directory, namespace)
                except OSError as err:
                    raise InvalidArgument(f"cannot read registry hosts file {path}: {err.strerror}") from err
                if not data.strip():
                    return cert_dir_hosts(directory, namespace)
                return parse_hosts_toml(data, path, namespace)
        return default_hosts(namespace)


def upstream_url(namespace: str) -> str:
    """The registry a namespace means when nothing else is configured."""
    return DEFAULT_DOCKER_SERVER if namespace == "docker.io" else f"https://{namespace}"


def default_hosts(namespace: str) -> list[RegistryHost]:
    upstream = _host(upstream_url(namespace), ALL_CAPABILITIES, None)
    if is_loopback(namespace):
        return [upstream, _host(f"http://{namespace}", ALL_CAPABILITIES, None)]
    return [upstream]


def cert_dir_hosts(directory: str, namespace: str) -> list[RegistryHost]:
    """A host directory without hosts.toml: the default upstream with Docker's
    certificate files (``*.crt`` CAs; ``*.cert`` client certs, key in ``*.key``)."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as err:
        raise InvalidArgument(f"cannot read registry host directory {directory}: {err.strerror}") from err
    ca = tuple(os.path.join(directory, n) for n in names if n.endswith(".crt"))
    client: list[tuple[str, str | None]] = []
    for name in names:
        if name.endswith(".cert"):
            key = os.path.join(directory, name[: -len(".cert")] + ".key")
            client.append((os.path.join(directory, name), key if os.path.exists(key) else None))
    return [replace(h, ca=ca, client=tuple(client), source=directory) for h in default_hosts(namespace)]


def parse_hosts_toml(data: bytes, path: str, namespace: str) -> list[RegistryHost]:
    """Pure: hosts.toml bytes -> hosts to try. `path` names the file in errors
    and anchors relative ca/client paths."""

    def bad(why: str) -> InvalidArgument:
        return InvalidArgument(f"malformed registry hosts file {path}: {why}")

    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise bad(str(err)) from err

    unknown = sorted(set(doc) - _HOST_KEYS - {"server", "host"})
    if unknown:
        raise bad(f"unknown key(s) {', '.join(unknown)}")
    base = os.path.dirname(path)

    hosts: list[RegistryHost] = []
    table = doc.get("host", {})
    if not isinstance(table, dict):
        raise bad("'host' must be a table of [host.\"<url>\"] sections")
    # tomllib keeps the file's order of tables, which is the order to try.
    for url, settings in table.items():
        if not isinstance(settings, dict):
            raise bad(f"host {url!r} must be a table")
        hosts += _parse_host(url, settings, base, bad, f"host {url!r}", namespace)

    server = doc.get("server")
    top = {k: v for k, v in doc.items() if k not in ("server", "host")}
    if server is not None:
        if not isinstance(server, str) or not server:
            raise bad("'server' must be a URL string")
        hosts += _parse_host(server, top, base, bad, "server", namespace)
    else:
        # No server: the namespace's own upstream, with every capability.
        upstream = _parse_host(upstream_url(namespace), top | {"capabilities": sorted(ALL_CAPABILITIES)},
                               base, bad, "server", namespace)
        hosts += upstream
        if is_loopback(namespace) and not any(h.scheme == "http" for h in upstream):
            hosts += [replace(upstream[0], url="http" + upstream[0].url[len("https"):], ca=(), client=(), skip_verify=False)]
    return hosts


_HOST_KEYS = frozenset({"capabilities", "skip_verify", "ca", "client", "header", "override_path", "dial_timeout",
                        "proxy"})
_GO_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns))+")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_go_duration(text: str) -> float | None:
    """Seconds of a Go duration ("1s", "1m30s", "250ms"); None if it is not one or not positive."""
    if not _GO_DURATION.fullmatch(text):
        return None
    seconds = sum(float(n) * _GO_UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|us|µs|ns|s)", text))
    return seconds if seconds > 0 else None


def _parse_host(
    url: str, settings: dict[str, Any], base: str, bad: Callable[[str], InvalidArgument], what: str, namespace: str
) -> list[RegistryHost]:
    """One entry -> its host, or two (HTTPS, then HTTP) for an http:// host with TLS settings."""
    if what != "server":
        unknown = sorted(set(settings) - _HOST_KEYS)
        if unknown:
            raise bad(f"{what}: unknown key(s) {', '.join(unknown)}")

    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise bad(f"{what}: {url!r} is not an http(s) URL")

    capabilities = settings.get("capabilities", sorted(ALL_CAPABILITIES))
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        raise bad(f"{what}: 'capabilities' must be a list of strings")
    capabilities = [c.lower() for c in capabilities]
    strange = sorted(set(capabilities) - ALL_CAPABILITIES)
    if strange:
        raise bad(f"{what}: unknown capabilities {', '.join(strange)}")
    if not capabilities:
        capabilities = sorted(ALL_CAPABILITIES)  # an empty list means all, as in containerd

    skip_verify = settings.get("skip_verify")
    if skip_verify is not None and not isinstance(skip_verify, bool):
        raise bad(f"{what}: 'skip_verify' must be true or false")
    override_path = settings.get("override_path", False)
    if not isinstance(override_path, bool):
        raise bad(f"{what}: 'override_path' must be true or false")
    dial_timeout: float | None = None
    if "dial_timeout" in settings:
        raw_timeout = settings["dial_timeout"]
        dial_timeout = parse_go_duration(raw_timeout) if isinstance(raw_timeout, str) else None
        if dial_timeout is None:
            raise bad(f"{what}: 'dial_timeout' must be a positive duration like \"1s\" or \"500ms\"")
    if "proxy" in settings:
        # containerd 2.1's per-host proxy: refused rather than silently not used.
        raise bad(f"{what}: 'proxy' is not supported by dockyardd (its requests go direct)")

    ca_value = settings.get("ca", [])
    ca_list = [ca_value] if isinstance(ca_value, str) else ca_value
    if not isinstance(ca_list, list) or not all(isinstance(c, str) for c in ca_list):
        raise bad(f"{what}: 'ca' must be a path or a list of paths")
    ca = tuple(os.path.join(base, c) for c in ca_list)

    client: list[tuple[str, str | None]] = []
    client_value = settings.get("client", [])
    for item in [client_value] if isinstance(client_value, str) else client_value if isinstance(client_value, list) else [None]:
        if isinstance(item, str):
            client.append((os.path.join(base, item), None))
        elif isinstance(item, list) and len(item) == 2 and all(isinstance(p, str) for p in item):
            client.append((os.path.join(base, item[0]), os.path.join(base, item[1]) if item[1] else None))
        else:
            raise bad(f"{what}: 'client' must be a path, a list of paths or a list of [cert, key] pairs")

    header_table = settings.get("header", {})
    if not isinstance(header_table, dict):
        raise bad(f"{what}: 'header' must be a table")
    headers: list[tuple[str, str]] = []
    for name, value in header_table.items():
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise bad(f"{what}: header {name!r} must be a string or a list of strings")
        headers.extend((name, v) for v in values)

    path = os.path.normpath(parts.path) if parts.path not in ("", "/") else ""
    if not override_path and not path.endswith("/v2"):
        path += "/v2"
    host = RegistryHost(
        url=f"{parts.scheme}://{parts.netloc}{path}",
        host=parts.netloc,
        capabilities=frozenset(capabilities),
        skip_verify=bool(skip_verify),
        ca=ca,
        client=tuple(client),
        headers=tuple(headers),
        dial_timeout=dial_timeout,
        namespace=namespace if is_mirror(parts.netloc, namespace) else "",
        source=None if base == "" else os.path.join(base, "hosts.toml"),
    )
    explicit_tls = bool(ca or client) or skip_verify is not None
    if parts.scheme == "http" and explicit_tls and parts.port != 80:
        # containerd's HTTP fallback: TLS settings on an http:// host mean
        # "HTTPS if it answers so, else HTTP".
        return [replace(host, url="https" + host.url[len("http"):]), host]
    return [host]


def is_mirror(netloc: str, namespace: str) -> bool:
    """Whether requests to ``netloc`` serve ``namespace`` from elsewhere (they carry ``ns=``)."""
    return netloc != namespace and not (namespace == "docker.io" and netloc == urlsplit(DEFAULT_DOCKER_SERVER).netloc)


def _host(url: str, capabilities: frozenset[str], source: str | None) -> RegistryHost:
    parts = urlsplit(url)
    return RegistryHost(url=f"{url}/v2", host=parts.netloc, capabilities=capabilities, source=source)
