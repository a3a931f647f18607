"""Registry authentication: challenges, credentials and token requests.

Pure: no I/O here. client.py sends the requests this module describes.

Flow (Docker Registry v2 token auth): a request without credentials gets
401 with `WWW-Authenticate: Bearer realm="...",service="...",scope="..."`
(or `Basic realm="..."`). For Bearer, the client asks the realm for a token
(GET with HTTP basic auth from username/password, or a POST refresh-token
grant with an identity token) and retries with `Authorization: Bearer <t>`.
A CRI `registry_token` is already a bearer token and is sent as is.

Credentials are secrets: their repr masks them, no message built here
contains them, and a token realm over plain HTTP to a non-loopback host is
refused rather than sent a password.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlencode, urlsplit

from dockyard.cri.errors import InvalidArgument, PullError, shorten
from dockyard.cri.image.registry.hosts import is_loopback

_TCHAR = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TOKEN68 = _TCHAR | set("/=")


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lowercased: "bearer", "basic"
    params: tuple[tuple[str, str], ...] = ()  # names lowercased, in header order

    def get(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse a WWW-Authenticate value (RFC 7235) into challenges.

    Lenient where registries are sloppy (spaces around "=", empty values);
    a malformed tail ends parsing and keeps what was parsed before it.
    """
    challenges: list[Challenge] = []
    i, n = 0, len(header)

    def skip(chars: str) -> None:
        nonlocal i
        while i < n and header[i] in chars:
            i += 1

    def token() -> str:
        nonlocal i
        start = i
        while i < n and header[i] in _TCHAR:
            i += 1
        return header[start:i]

    while i < n:
        skip(" \t,")
        scheme = token()
        if not scheme:
            break
        params: list[tuple[str, str]] = []
        skip(" \t")
        while i < n:
            mark = i
            name = token()
            skip(" \t")
            if not name or i >= n or header[i] != "=":
                i = mark  # not a parameter: the next challenge's scheme, or junk
                break
            # token68 form ("Negotiate abc=="): "=" padding runs to the end or a comma
            rest = header[i:].split(",", 1)[0].strip()
            if not params and rest and set(rest) == {"="}:
                params.append(("", name + rest))
                i += len(header[i:].split(",", 1)[0])
                skip(" \t,")
                break
            i += 1
            skip(" \t")
            if i < n and header[i] == '"':
                i += 1
                value: list[str] = []
                while i < n and header[i] != '"':
                    if header[i] == "\\" and i + 1 < n:
                        i += 1
                    value.append(header[i])
                    i += 1
                i += 1  # closing quote (or end)
                params.append((name.lower(), "".join(value)))
            else:
                params.append((name.lower(), token()))
            skip(" \t")
            if i < n and header[i] == ",":
                i += 1
                skip(" \t")
        challenges.append(Challenge(scheme.lower(), tuple(params)))
    return challenges


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a pull may present to one registry. Secrets are masked in repr."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    registry_token: str = field(default="", repr=False)
    server_address: str = ""  # the CRI AuthConfig's; "" applies to any host of the pull

    def __repr__(self) -> str:
        secrets = [name for name in ("password", "identity_token", "registry_token") if getattr(self, name)]
        return f"Credentials(username={self.username!r}, server_address={self.server_address!r}, secrets={secrets})"

    __str__ = __repr__

    @property
    def has_basic(self) -> bool:
        return bool(self.username or self.password)


class CredentialSource(Protocol):
    """Per-registry credentials from the daemon's config, keyed by host[:port]."""

    def lookup(self, host: str) -> Credentials | None: ...


class StaticCredentials:
    def __init__(self, by_host: Mapping[str, Credentials] | None = None) -> None:
        self._by_host = dict(by_host or {})

    def lookup(self, host: str) -> Credentials | None:
        return self._by_host.get(host)


def credentials_from_auth_config(
    *,
    username: str = "",
    password: str = "",
    auth: str = "",
    server_address: str = "",
    identity_token: str = "",
    registry_token: str = "",
) -> Credentials | None:
    """CRI AuthConfig fields -> Credentials (None when all are empty).

    `auth` is base64("user:password") and, as in containerd, wins over the
    separate fields. A malformed `auth` is InvalidArgument that names the
    server, never the value.
    """
    where = shorten(server_address) if server_address else "the pull's registry"
    for name, token in (("identity_token", identity_token), ("registry_token", registry_token)):
        # Sent in an HTTP header or form: printable ASCII only (a newline
        # would forge a header; non-ASCII cannot be sent at all).
        if token and not (token.isascii() and token.isprintable()):
            raise InvalidArgument(f"AuthConfig.{name} for {where} is not printable ASCII")
    if auth:
        try:
            decoded = base64.b64decode(auth.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError) as err:  # ValueError: non-ASCII text
            raise InvalidArgument(f"AuthConfig.auth for {where} is not valid base64 of user:password") from err
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise InvalidArgument(f"AuthConfig.auth for {where} does not have the form user:password")
        username, password = user, secret
    if not (username or password or identity_token or registry_token):
        return None
    return Credentials(username, password, identity_token, registry_token, _host_of(server_address))


def _host_of(server_address: str) -> str:
    if not server_address:
        return ""
    try:
        parts = urlsplit(server_address if "://" in server_address else f"//{server_address}")
    except ValueError as err:  # "Invalid IPv6 URL": an unclosed '['
        raise InvalidArgument(f"AuthConfig.server_address {shorten(server_address)!r} is not a host or URL") from err
    return parts.netloc or server_address


def select_credentials(request: Credentials | None, source: CredentialSource | None, host: str) -> Credentials | None:
    """The credentials to present to `host`: the pull's own (CRI AuthConfig)
    unless they name another server; else the configured ones for the host."""
    if request is not None and (not request.server_address or request.server_address == host):
        return request
    return source.lookup(host) if source is not None else None


def basic_authorization(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def pull_scope(repository_path: str) -> str:
    return f"repository:{repository_path}:pull"


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """An HTTP request for a bearer token. `form` set means POST."""

    url: str
    form: tuple[tuple[str, str], ...] | None = field(default=None, repr=False)
    authorization: str | None = field(default=None, repr=False)

    @property
    def method(self) -> str:
        return "GET" if self.form is None else "POST"

    @property
    def safe_url(self) -> str:
        """The URL without its query, for messages (query may carry account names)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"


def token_request(challenge: Challenge, scope: str, credentials: Credentials | None, reference: str) -> TokenRequest:
    realm = challenge.get("realm")
    if not realm:
        raise PullError(f"pulling {reference}: bearer challenge without a realm", reason="unauthorized")
    parts = urlsplit(realm)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise PullError(f"pulling {reference}: token realm {realm!r} is not an http(s) URL", reason="unauthorized")
    if parts.scheme == "http" and not is_loopback(parts.netloc):
        raise PullError(
            f"pulling {reference}: token realm {parts.scheme}://{parts.netloc}{parts.path} is plain HTTP to a non-loopback host",
            reason="unauthorized",
        )
    query: list[tuple[str, str]] = []
    service = challenge.get("service")
    if service:
        query.append(("service", service))
    # The challenge's scope (if any) and ours, each once, in that order.
    for item in dict.fromkeys((challenge.get("scope") or "").split() + [scope]):
        query.append(("scope", item))
    if credentials is not None and credentials.identity_token:
        form = tuple(query) + (
            ("grant_type", "refresh_token"),
            ("refresh_token", credentials.identity_token),
            ("client_id", "dockyard"),
        )
        return TokenRequest(url=realm, form=form)
    sep = "&" if parts.query else "?"
    url = realm + (sep + urlencode(query) if query else "")
    authorization = basic_authorization(credentials) if credentials is not None and credentials.has_basic else None
    return TokenRequest(url=url, authorization=authorization)


@dataclass(frozen=True, slots=True)
class Token:
    value: str = field(repr=False)
    expires_in: float


def parse_token_response(body: bytes, realm: str) -> Token:
    """{"token": ..., "expires_in": ...} (or "access_token", OAuth2 style)."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PullError(f"token server {realm} answered with invalid JSON", reason="unauthorized") from err
    if not isinstance(doc, dict):
        raise PullError(f"token server {realm} answered with a non-object", reason="unauthorized")
    value = doc.get("token") or doc.get("access_token")
    if not isinstance(value, str) or not value:
        raise PullError(f"token server {realm} answered without a token", reason="unauthorized")
    expires = doc.get("expires_in")
    # The spec's default lifetime is 60 seconds.
    return Token(value, float(expires) if isinstance(expires, (int, float)) and expires > 0 else 60.0)
