"""Registry host configuration in containerd's hosts.toml directory layout.

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
      [host."https://mirror.example".header]
        x-custom = "value"                      # or a list of values

Hosts are tried in the order the file lists them, then `server`.

Where this departs from containerd, on purpose: when a hosts.toml lists
`[host]` entries and does not set `server`, the upstream registry is NOT
appended. containerd (1.6 and later) appends it, so a pull whose mirrors all
fail goes to the internet, which the node's owner configured the mirrors to
avoid. To fall back, write `server = ...` explicitly. A hosts.toml without any
`[host]` still applies its top-level settings to the default server.

Plain HTTP is allowed only to loopback (localhost, 127.0.0.0/8, ::1); an
http:// host elsewhere is a configuration error naming the file. Without any
hosts.toml, a loopback registry is tried over HTTPS and then plain HTTP, as
docker does.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from dockyard.cri.errors import InvalidArgument

DEFAULT_DOCKER_SERVER = "https://registry-1.docker.io"
ALL_CAPABILITIES = frozenset({"pull", "resolve", "push"})


@dataclass(frozen=True, slots=True)
class RegistryHost:
    """One place to send registry requests for a namespace.

    `url` is the API root ("https://mirror.example/v2"); `host` is its
    netloc, which is also the key for per-registry credentials.
    """

    url: str
    host: str
    capabilities: frozenset[str] = ALL_CAPABILITIES
    skip_verify: bool = False
    ca: tuple[str, ...] = ()
    client: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
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
    """Directories to look in for a namespace, in order."""
    return [namespace, "_default"]


class HostsConfig:
    """Reads `<config_path>/<namespace>/hosts.toml` on every resolve, so edits
    apply to the next pull without a restart (as in containerd)."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path

    def resolve(self, namespace: str) -> list[RegistryHost]:
        if self.config_path:
            for name in host_directory_names(namespace):
                directory = os.path.join(self.config_path, name)
                path = os.path.join(directory, "hosts.toml")
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except FileNotFoundError:
                    continue
                except OSError as err:
                    raise InvalidArgument(f"cannot read registry hosts file {path}: {err.strerror}") from err
                return parse_hosts_toml(data, path, namespace)
        return default_hosts(namespace)


def default_hosts(namespace: str) -> list[RegistryHost]:
    if namespace == "docker.io":
        return [_host(DEFAULT_DOCKER_SERVER, ALL_CAPABILITIES, None)]
    if is_loopback(namespace):
        return [_host(f"https://{namespace}", ALL_CAPABILITIES, None), _host(f"http://{namespace}", ALL_CAPABILITIES, None)]
    return [_host(f"https://{namespace}", ALL_CAPABILITIES, None)]


def parse_hosts_toml(data: bytes, path: str, namespace: str) -> list[RegistryHost]:
    """Pure: hosts.toml bytes -> hosts to try. `path` names the file in errors
    and anchors relative ca/client paths."""

    def bad(why: str) -> InvalidArgument:
        return InvalidArgument(f"malformed registry hosts file {path}: {why}")

    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise bad(str(err)) from err

    known_top = {"server", "capabilities", "skip_verify", "ca", "client", "header", "override_path", "host"}
    unknown = sorted(set(doc) - known_top)
    if unknown:
        raise bad(f"unknown key(s) {', '.join(unknown)}")
    base = os.path.dirname(path)

    hosts: list[RegistryHost] = []
    table = doc.get("host", {})
    if not isinstance(table, dict):
        raise bad("'host' must be a table of [host.\"<url>\"] sections")
    for url, settings in table.items():
        if not isinstance(settings, dict):
            raise bad(f"host {url!r} must be a table")
        hosts.append(_parse_host(url, settings, base, bad, f"host {url!r}"))

    server = doc.get("server")
    if server is not None:
        if not isinstance(server, str) or not server:
            raise bad("'server' must be a URL string")
        hosts.append(_parse_host(server, doc, base, bad, "server"))
    elif not hosts:
        upstream = default_hosts(namespace)[0]
        hosts.append(_parse_host(upstream.url.removesuffix("/v2"), doc, base, bad, "server"))
    return hosts


def _parse_host(
    url: str, settings: dict[str, Any], base: str, bad: Callable[[str], InvalidArgument], what: str
) -> RegistryHost:
    known = {"capabilities", "skip_verify", "ca", "client", "header", "override_path"}
    if what != "server":
        unknown = sorted(set(settings) - known)
        if unknown:
            raise bad(f"{what}: unknown key(s) {', '.join(unknown)}")

    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise bad(f"{what}: {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.netloc):
        raise bad(f"{what}: plain HTTP is allowed only to loopback registries, not {parts.netloc}")

    capabilities = settings.get("capabilities", sorted(ALL_CAPABILITIES))
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        raise bad(f"{what}: 'capabilities' must be a list of strings")
    strange = sorted(set(capabilities) - ALL_CAPABILITIES)
    if strange:
        raise bad(f"{what}: unknown capabilities {', '.join(strange)}")

    skip_verify = settings.get("skip_verify", False)
    if not isinstance(skip_verify, bool):
        raise bad(f"{what}: 'skip_verify' must be true or false")
    override_path = settings.get("override_path", False)
    if not isinstance(override_path, bool):
        raise bad(f"{what}: 'override_path' must be true or false")

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
            client.append((os.path.join(base, item[0]), os.path.join(base, item[1])))
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

    path = parts.path.rstrip("/")
    if not override_path and not path.endswith("/v2"):
        path += "/v2"
    return RegistryHost(
        url=f"{parts.scheme}://{parts.netloc}{path}",
        host=parts.netloc,
        capabilities=frozenset(capabilities),
        skip_verify=skip_verify,
        ca=ca,
        client=tuple(client),
        headers=tuple(headers),
        source=None if base == "" else os.path.join(base, "hosts.toml"),
    )


def _host(url: str, capabilities: frozenset[str], source: str | None) -> RegistryHost:
    parts = urlsplit(url)
    return RegistryHost(url=f"{url}/v2", host=parts.netloc, capabilities=capabilities, source=source)
