"""The registry HTTP client: one httpx.AsyncClient per registry host.

What it adds to httpx, and why:

- TLS per host from hosts.toml (extra CAs, client certificates, skip_verify),
  so one mirror's CA does not widen trust for every other host.
- Plain HTTP only where configuration asks for it (a hosts.toml's http://
  host) or to loopback; checked for every URL actually requested, redirects
  included, so a redirect cannot downgrade an HTTPS registry elsewhere.
- Auth: one ping of /v2/ per host learns the challenge, so the first real
  request already carries a token; a later 401 (expired token) refreshes it
  once. Tokens are cached per (host, scope, credentials) until shortly before
  they expire.
- Redirects are followed by hand (blob GETs usually go to a CDN): the
  Authorization header is dropped when the host changes, and a redirect to
  plain HTTP off loopback is refused.
- Retries with exponential backoff (and jitter) for connection errors,
  timeouts, 429 and 5xx. 4xx other than 429 is final.
- A no-progress timeout while a body streams: no bytes for that long fails
  the download (containerd's image_pull_progress_timeout), independent of the
  total time a large layer may take.

Messages name the URL without its query string (CDN URLs carry signatures
there) and never contain credentials.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from dockyard.cri.errors import PullError
from dockyard.cri.image.registry import read_sizes
from dockyard.cri.image.registry.auth import (
    Challenge,
    Credentials,
    basic_authorization,
    parse_token_response,
    parse_www_authenticate,
    token_request,
)
from dockyard.cri.image.registry.hosts import RegistryHost, is_loopback

log = logging.getLogger("dockyard.cri.registry")

MAX_MANIFEST_BYTES = 4 << 20  # containerd's limit for manifests and indexes
MAX_REDIRECTS = 5
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class ClientOptions:
    timeout: float = 30.0  # connect / single read / write, per request
    retries: int = 3  # extra attempts after the first
    backoff: float = 0.5  # first retry delay; doubles each time
    max_backoff: float = 10.0
    no_progress_timeout: float = 60.0


class InterruptedBody(PullError):
    """The connection broke while a body streamed; the download may be restarted."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="registry_error")


def safe_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def check_scheme(url: str, reference: str, configured: RegistryHost | None = None) -> None:
    """HTTPS anywhere; plain HTTP to loopback, or to the host a hosts.toml names with http://."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http":
        if is_loopback(parts.netloc):
            return
        if configured is not None and configured.scheme == "http" and parts.netloc == configured.host:
            return
    raise PullError(
        f"pulling {reference}: refusing {parts.scheme}:// to {parts.netloc} (plain HTTP only to loopback "
        "registries and to hosts a hosts.toml names with http://)",
        reason="registry_error",
    )


def backoff_delay(attempt: int, options: ClientOptions) -> float:
    """Delay before retry number `attempt` (0-based): exponential with full jitter's upper half."""
    ceiling = min(options.max_backoff, options.backoff * (2.0**attempt))
    return ceiling * (0.5 + random.random() / 2)


def status_error(status: int, url: str, reference: str) -> PullError:
    where = safe_url(url)
    if status == 401:
        return PullError(f"pulling {reference}: {where}: unauthorized (401): credentials missing or rejected", reason="unauthorized")
    if status == 403:
        return PullError(f"pulling {reference}: {where}: access denied (403)", reason="unauthorized")
    if status == 404:
        return PullError(f"pulling {reference}: {where}: not found (404)", reason="not_found")
    if status == 408:
        return PullError(f"pulling {reference}: {where}: registry timed out (408)", reason="timeout")
    return PullError(f"pulling {reference}: {where}: registry answered {status}", reason="registry_error")


def _ssl_context(host: RegistryHost) -> ssl.SSLContext | bool:
    if host.skip_verify:
        return False
    context = ssl.create_default_context()
    for ca in host.ca:
        try:
            context.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as err:
            raise PullError(f"registry {host.host}: cannot load CA {ca} (from {host.source or 'config'}): {err}", reason="registry_error") from err
    for cert, key in host.client:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as err:
            raise PullError(f"registry {host.host}: cannot load client certificate {cert}: {err}", reason="registry_error") from err
    return context


def _caused_by_tls(err: BaseException) -> bool:
    seen: BaseException | None = err
    for _ in range(8):  # httpx wraps httpcore wraps ssl
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass(slots=True)
class _CachedToken:
    authorization: str
    expires_at: float


class RegistryClient:
    """Shared by all pulls of a daemon; safe for concurrent use on one event loop."""

    def __init__(self, options: ClientOptions, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.options = options
        self._transport = transport
        read_sizes.enlarge_http_reads()
        self._clients: dict[RegistryHost, httpx.AsyncClient] = {}
        self._default: httpx.AsyncClient | None = None
        self._challenges: dict[str, list[Challenge]] = {}  # host.url -> challenges from /v2/
        self._tokens: dict[tuple[str, str, Credentials | None], _CachedToken] = {}
        self._token_locks: dict[tuple[str, str, Credentials | None], asyncio.Lock] = {}

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.options.timeout)

    def _client_for(self, host: RegistryHost) -> httpx.AsyncClient:
        client = self._clients.get(host)
        if client is None:
            # hosts.toml's dial_timeout bounds the connect alone (a dead mirror fails over quickly).
            timeout = httpx.Timeout(self.options.timeout, connect=host.dial_timeout or self.options.timeout)
            if self._transport is not None:
                client = httpx.AsyncClient(transport=self._transport, timeout=timeout)
            else:
                client = httpx.AsyncClient(verify=_ssl_context(host), timeout=timeout)
            self._clients[host] = client
        return client

    def _default_client(self) -> httpx.AsyncClient:
        if self._default is None:
            if self._transport is not None:
                self._default = httpx.AsyncClient(transport=self._transport, timeout=self._timeout())
            else:
                self._default = httpx.AsyncClient(timeout=self._timeout())
        return self._default

    async def aclose(self) -> None:
        clients = list(self._clients.values()) + ([self._default] if self._default else [])
        self._clients.clear()
        self._default = None
        for client in clients:
            await client.aclose()

    # --- auth ---------------------------------------------------------------

    async def _challenges_for(self, host: RegistryHost, reference: str) -> list[Challenge]:
        known = self._challenges.get(host.url)
        if known is not None:
            return known
        async with self._request(host, "GET", host.url + "/", {}, None, reference) as response:
            challenges = parse_www_authenticate(response.headers.get("www-authenticate", "")) if response.status_code == 401 else []
        self._challenges[host.url] = challenges
        return challenges

    async def _authorization(
        self, host: RegistryHost, challenges: list[Challenge], scope: str, creds: Credentials | None, reference: str, *, refresh: bool
    ) -> str | None:
        by_scheme = {c.scheme: c for c in challenges}
        bearer, basic = by_scheme.get("bearer"), by_scheme.get("basic")
        if bearer is not None:
            if creds is not None and creds.registry_token:
                return "Bearer " + creds.registry_token
            key = (host.host, scope, creds)
            lock = self._token_locks.setdefault(key, asyncio.Lock())
            async with lock:  # one token fetch per key even when layers start together
                cached = self._tokens.get(key)
                if cached is not None and not refresh and cached.expires_at > time.monotonic():
                    return cached.authorization
                token = await self._fetch_token(host, bearer, scope, creds, reference)
                self._tokens[key] = token
                return token.authorization
        if basic is not None:
            if creds is None or not creds.has_basic:
                raise PullError(f"pulling {reference}: registry {host.host} requires credentials (basic auth) and none were given", reason="unauthorized")
            return basic_authorization(creds)
        return None

    async def _fetch_token(self, host: RegistryHost, challenge: Challenge, scope: str, creds: Credentials | None, reference: str) -> _CachedToken:
        request = token_request(challenge, scope, creds, reference)
        realm_host = urlsplit(request.url).netloc
        client = self._client_for(host) if realm_host == host.host else self._default_client()
        headers = {"Authorization": request.authorization} if request.authorization else {}
        for attempt in range(self.options.retries + 1):
            try:
                if request.form is None:
                    response = await client.get(request.url, headers=headers)
                else:
                    response = await client.post(request.url, data=dict(request.form), headers=headers)
            except httpx.TransportError as err:
                if attempt == self.options.retries:
                    raise PullError(f"pulling {reference}: token server {request.safe_url}: {type(err).__name__}", reason="registry_error") from err
                await asyncio.sleep(backoff_delay(attempt, self.options))
                continue
            if response.status_code in _RETRY_STATUS and attempt < self.options.retries:
                await asyncio.sleep(backoff_delay(attempt, self.options))
                continue
            if response.status_code in (401, 403):
                raise PullError(f"pulling {reference}: token server {request.safe_url} rejected the credentials ({response.status_code})", reason="unauthorized")
            if response.status_code != 200:
                raise PullError(f"pulling {reference}: token server {request.safe_url} answered {response.status_code}", reason="registry_error")
            token = parse_token_response(response.content, request.safe_url)
            # Renew a little early so a token does not expire mid-request.
            return _CachedToken("Bearer " + token.value, time.monotonic() + max(token.expires_in - 10, 1))
        raise AssertionError("unreachable: the loop returns or raises")

    # --- requests -------------------------------------------------------------

    @asynccontextmanager
    async def get(
        self, host: RegistryHost, path: str, accept: str | None, scope: str, creds: Credentials | None, reference: str
    ) -> AsyncIterator[httpx.Response]:
        """GET `<host.url><path>` with auth, retries and redirects; yields a 200
        response whose body is not read yet. Other statuses raise PullError."""
        challenges = await self._challenges_for(host, reference)
        authorization = await self._authorization(host, challenges, scope, creds, reference, refresh=False)
        headers = {"Accept": accept} if accept else {}
        # A mirror is told which registry it stands in for (containerd's ns= parameter).
        url = host.url + path + ("?" + urlencode({"ns": host.namespace}) if host.namespace else "")
        for refreshed in (False, True):
            async with self._request(host, "GET", url, headers, authorization, reference) as response:
                if response.status_code == 200:
                    yield response
                    return
                if response.status_code == 401 and not refreshed:
                    fresh = parse_www_authenticate(response.headers.get("www-authenticate", ""))
                    if fresh:
                        self._challenges[host.url] = fresh
                        challenges = fresh
                        authorization = await self._authorization(host, challenges, scope, creds, reference, refresh=True)
                        continue
                raise status_error(response.status_code, str(response.url), reference)

    @asynccontextmanager
    async def _request(
        self,
        host: RegistryHost,
        method: str,
        url: str,
        headers: dict[str, str],
        authorization: str | None,
        reference: str,
    ) -> AsyncIterator[httpx.Response]:
        """One logical request: retried, redirected; yields the final response
        (any status except a retryable one, which raises after the retries)."""
        last: PullError | None = None
        for attempt in range(self.options.retries + 1):
            if attempt:
                delay = backoff_delay(attempt - 1, self.options)
                log.info("retrying %s %s in %.2fs (attempt %d of %d): %s", method, safe_url(url), delay, attempt + 1, self.options.retries + 1, last)
                await asyncio.sleep(delay)
            target, hdrs, on_host = url, dict(host.headers) | headers, True
            if authorization:
                hdrs["Authorization"] = authorization
            try:
                for _hop in range(MAX_REDIRECTS + 1):
                    check_scheme(target, reference, host)
                    client = self._client_for(host) if on_host else self._default_client()
                    response = await client.send(client.build_request(method, target, headers=hdrs), stream=True)
                    if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
                        await response.aclose()
                        target = urljoin(target, response.headers["location"])
                        if urlsplit(target).netloc != host.host:
                            on_host = False
                            hdrs.pop("Authorization", None)
                        continue
                    break
                else:
                    raise PullError(f"pulling {reference}: more than {MAX_REDIRECTS} redirects from {safe_url(url)}", reason="registry_error")
            except httpx.TimeoutException as err:
                last = PullError(f"pulling {reference}: {safe_url(target)}: timed out ({type(err).__name__})", reason="timeout")
                continue
            except httpx.ConnectError as err:
                if _caused_by_tls(err):
                    # A failed TLS handshake (wrong CA, plain-HTTP server) fails
                    # the same way every time: no retries, let the next host try.
                    raise PullError(f"pulling {reference}: {safe_url(target)}: TLS handshake failed: {err}", reason="registry_error") from err
                last = PullError(f"pulling {reference}: {safe_url(target)}: {type(err).__name__}: {err}", reason="registry_error")
                continue
            except httpx.TransportError as err:
                last = PullError(f"pulling {reference}: {safe_url(target)}: {type(err).__name__}: {err}", reason="registry_error")
                continue
            try:
                if response.status_code in _RETRY_STATUS:
                    last = status_error(response.status_code, target, reference)
                    continue
                yield response
                return
            finally:
                await response.aclose()
        assert last is not None
        raise last

    async def read_limited(self, response: httpx.Response, limit: int, what: str, reference: str) -> bytes:
        """The whole body, at most `limit` bytes, under the no-progress timeout."""
        chunks: list[bytes] = []
        total = 0
        async for chunk in self.iter_body(response, what, reference):
            total += len(chunk)
            if total > limit:
                raise PullError(f"pulling {reference}: {what} is larger than {limit} bytes", reason="bad_media_type")
            chunks.append(chunk)
        return b"".join(chunks)

    async def iter_body(self, response: httpx.Response, what: str, reference: str) -> AsyncIterator[bytes]:
        """The body's chunks; PullError(no_progress) if none arrives in time,
        InterruptedBody if the connection breaks."""
        read_sizes.enlarge_receives(response.extensions)
        chunks = response.aiter_bytes()
        while True:
            try:
                async with asyncio.timeout(self.options.no_progress_timeout):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError as err:
                raise PullError(
                    f"pulling {reference}: {what}: no data for {self.options.no_progress_timeout:g}s from {safe_url(str(response.url))}",
                    reason="no_progress",
                ) from err
            except httpx.TransportError as err:
                raise InterruptedBody(f"pulling {reference}: {what}: connection broke: {type(err).__name__}: {err}") from err
            yield chunk
