"""Pulling an image: manifest (or index -> platform manifest), config, layers.

    resolve ref -> manifest or index    (hosts with "resolve", or "pull" for a digest)
      index -> choose platform -> manifest by digest
    config blob, then layers (at most max_concurrent_layers at once)
      -> ContentStore, each verified while it streams (size and sha256 in
         the store's writer; a mismatch deletes the temp file and keeps nothing)

Sharing: blobs are keyed by digest in `_inflight`; a second pull needing a
blob that is downloading waits for the same task. The task is shielded from
any one waiter's cancellation and is cancelled only when its last waiter
goes away, and then awaited, so its writer has removed the temp file before
the cancellation reaches the caller.

Hosts: mirrors from hosts.toml are tried in order; a host that does not
have the manifest or blob, or fails, hands over to the next one listed (with
a warning in the log). Digest and media-type errors do not fail over: the
bytes were wrong, not missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from dockyard.cri.content.follow import FollowingReader
from dockyard.cri.content.store import ContentStore
from dockyard.cri.errors import CriError, PullError
from dockyard.cri.image.platform import Platform, choose
from dockyard.cri.image.reference import Reference, is_valid_digest
from dockyard.cri.image.registry.auth import CredentialSource, Credentials, pull_scope, select_credentials
from dockyard.cri.image.registry.client import MAX_MANIFEST_BYTES, ClientOptions, InterruptedBody, RegistryClient, backoff_delay
from dockyard.cri.image.registry.hosts import HostsConfig, RegistryHost

log = logging.getLogger("dockyard.cri.pull")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

CONFIG_TYPES = frozenset({"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"})
LAYER_TYPES = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.zstd",
    }
)

# Errors after which the next listed host is tried.
_FAILOVER = frozenset({"not_found", "registry_error", "timeout", "unauthorized"})
_PROGRESS_EVERY = 2.0  # seconds between debug progress lines per blob


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class PulledImage:
    reference: Reference
    manifest_digest: str  # the top-level digest (the index's, for a multi-platform image)
    config_digest: str
    config: dict[str, Any]
    layers: tuple[Descriptor, ...]
    repo_digest: str  # "domain/path@sha256:<manifest digest>"
    platform_manifest_digest: str = ""  # the manifest chosen from an index (== manifest_digest otherwise)


LayerReady = Callable[[int, Descriptor, list[str]], None]
# (index, layer, diff ids, follow): ``follow(what)`` opens a reader of the
# blob as it downloads (cri/content/follow.py).
LayerStarted = Callable[[int, Descriptor, list[str], Callable[[str], FollowingReader]], None]


class PullMetrics(Protocol):
    """Hooks the daemon's metrics implement (cri/metrics.py)."""

    def layer_reused(self) -> None: ...

    def bytes_pulled(self, count: int, registry: str = "") -> None: ...


@dataclass(slots=True)
class _Download:
    task: asyncio.Task[None]
    waiters: int = 0


@dataclass(slots=True)
class _Pull:
    ref: Reference
    auth: Credentials | None
    hosts: list[RegistryHost]
    scope: str
    reused: list[str] = field(default_factory=list)
    # Called as a layer's download starts, with the blob's follow().
    started: Callable[[Descriptor, Callable[[str], FollowingReader]], None] | None = None


def media_type_of(body: bytes, content_type: str | None, what: str, reference: str) -> tuple[str, dict[str, Any]]:
    """Pure: the manifest's media type (its own mediaType field wins over the
    Content-Type header, which proxies rewrite) and its parsed JSON."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PullError(f"pulling {reference}: {what} is not JSON", reason="bad_media_type") from err
    if not isinstance(doc, dict):
        raise PullError(f"pulling {reference}: {what} is not a JSON object", reason="bad_media_type")
    declared = doc.get("mediaType")
    header = (content_type or "").split(";", 1)[0].strip()
    media_type = declared if isinstance(declared, str) and declared else header
    if media_type not in MANIFEST_TYPES | INDEX_TYPES:
        raise PullError(
            f"pulling {reference}: {what} has unsupported media type {media_type or '(none)'!r}", reason="bad_media_type"
        )
    if doc.get("schemaVersion") != 2:
        raise PullError(f"pulling {reference}: {what} has schemaVersion {doc.get('schemaVersion')!r}, want 2", reason="bad_media_type")
    return media_type, doc


def descriptor_of(raw: Any, allowed: frozenset[str], what: str, reference: str) -> Descriptor:
    """Pure: a validated descriptor from manifest JSON."""
    if not isinstance(raw, dict):
        raise PullError(f"pulling {reference}: {what} is not a descriptor object", reason="bad_media_type")
    media_type, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
    if not isinstance(digest, str) or not is_valid_digest(digest):
        raise PullError(f"pulling {reference}: {what} has invalid digest {digest!r}", reason="bad_media_type")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise PullError(f"pulling {reference}: {what} {digest} has invalid size {size!r}", reason="bad_media_type")
    if media_type not in allowed:
        raise PullError(f"pulling {reference}: {what} {digest} has unsupported media type {media_type!r}", reason="bad_media_type")
    assert isinstance(media_type, str)
    return Descriptor(media_type, digest, size)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Puller:
    def __init__(
        self,
        hosts: HostsConfig,
        content: ContentStore,
        *,
        credentials: CredentialSource | None = None,
        platform: Platform | None = None,
        max_concurrent_layers: int = 3,
        timeout: float = 30.0,
        retries: int = 3,
        no_progress_timeout: float = 60.0,
        metrics: PullMetrics | None = None,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._hosts = hosts
        self._content = content
        self._credentials = credentials
        self._platform = platform or Platform.host()
        self._layer_slots = asyncio.Semaphore(max_concurrent_layers)
        self._metrics = metrics
        self._options = ClientOptions(timeout=timeout, retries=retries, backoff=backoff, no_progress_timeout=no_progress_timeout)
        self._client = RegistryClient(self._options, transport=transport)
        self._inflight: dict[str, _Download] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def pull(self, ref: Reference, auth: Credentials | None = None, platform: Platform | None = None,
                   on_layer: LayerReady | None = None, on_layer_start: LayerStarted | None = None) -> PulledImage:
        """Pull ``ref``; from an index, the manifest for ``platform`` (default: the node's).

        ``on_layer(index, layer, diff_ids)`` is called as soon as each layer's
        blob is in the store (downloaded, or there already), so the caller can
        unpack it while the other layers still download.  ``on_layer_start(index,
        layer, diff_ids, follow)`` is called as each download this pull makes
        starts (once per attempt), so the caller can unpack it as it arrives."""
        hosts = self._hosts.resolve(ref.domain)
        pull = _Pull(ref, auth, hosts, pull_scope(ref.path))
        started = time.monotonic()
        capability = "pull" if ref.digest else "resolve"
        body, content_type, host = await self._manifest(pull, ref.object(), capability)
        top_digest = sha256_digest(body)
        if ref.digest is not None and top_digest != ref.digest:
            raise PullError(f"pulling {ref}: manifest from {host.host} has digest {top_digest}", reason="digest_mismatch")
        media_type, doc = media_type_of(body, content_type, "manifest", ref.string())
        # The host that answered goes first for everything else of this pull.
        pull.hosts = [host] + [h for h in hosts if h is not host]
        await self._store_small(top_digest, body)

        manifest_digest, manifest = top_digest, doc
        if media_type in INDEX_TYPES:
            try:
                chosen = choose(doc, platform or self._platform)
            except CriError as err:
                raise PullError(f"pulling {ref}: {err}", reason="not_found") from err
            child = descriptor_of(chosen, MANIFEST_TYPES | INDEX_TYPES, "index entry", ref.string())
            body, content_type, _ = await self._manifest(pull, child.digest, "pull")
            manifest_digest = sha256_digest(body)
            if manifest_digest != child.digest:
                raise PullError(f"pulling {ref}: manifest {child.digest} has digest {manifest_digest}", reason="digest_mismatch")
            child_type, manifest = media_type_of(body, content_type, f"manifest {child.digest}", ref.string())
            if child_type not in MANIFEST_TYPES:
                raise PullError(f"pulling {ref}: index entry {child.digest} is itself an index ({child_type})", reason="bad_media_type")
            await self._store_small(manifest_digest, body)

        config = descriptor_of(manifest.get("config"), CONFIG_TYPES, "config", ref.string())
        raw_layers = manifest.get("layers")
        if not isinstance(raw_layers, list):
            raise PullError(f"pulling {ref}: manifest {manifest_digest} has no layers list", reason="bad_media_type")
        layers = tuple(descriptor_of(raw, LAYER_TYPES, f"layer {i}", ref.string()) for i, raw in enumerate(raw_layers))

        await self._ensure_blob(pull, config, "config")
        try:
            config_doc = json.loads(await asyncio.to_thread(self._content.read, config.digest))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise PullError(f"pulling {ref}: config {config.digest} is not JSON", reason="bad_media_type") from err
        if not isinstance(config_doc, dict):
            raise PullError(f"pulling {ref}: config {config.digest} is not a JSON object", reason="bad_media_type")
        diff_ids = (config_doc.get("rootfs") or {}).get("diff_ids") if isinstance(config_doc.get("rootfs"), dict) else None
        if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
            raise PullError(
                f"pulling {ref}: config {config.digest} lists {len(diff_ids) if isinstance(diff_ids, list) else 'no'} diff_ids for {len(layers)} layers",
                reason="bad_layer",
            )

        layer_diff_ids = [str(d) for d in diff_ids]
        if on_layer_start is not None:
            def download_started(desc: Descriptor, follow: Callable[[str], FollowingReader]) -> None:
                for i, same in enumerate(layers):
                    if same == desc:
                        on_layer_start(i, desc, layer_diff_ids, follow)
            pull.started = download_started
        await self._layers(pull, layers, None if on_layer is None else
                           lambda i, layer: on_layer(i, layer, layer_diff_ids))
        log.debug(
            "pulled %s (%s) in %.2fs: %d layers, %d already present",
            ref, manifest_digest, time.monotonic() - started, len(layers), len(pull.reused),
        )
        return PulledImage(
            reference=ref,
            manifest_digest=top_digest,
            config_digest=config.digest,
            config=config_doc,
            layers=layers,
            repo_digest=f"{ref.repository}@{top_digest}",
            platform_manifest_digest=manifest_digest,
        )

    async def _layers(self, pull: _Pull, layers: tuple[Descriptor, ...],
                      ready: Callable[[int, Descriptor], None] | None = None) -> None:
        async def one(layer: Descriptor) -> None:
            async with self._layer_slots:
                await self._ensure_blob(pull, layer, "layer")
            if ready is not None:
                for i, same in enumerate(layers):
                    if same == layer:
                        ready(i, layer)

        tasks = [asyncio.create_task(one(layer)) for layer in dict.fromkeys(layers)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # One layer failed (or we were cancelled): stop the others, and wait
            # so every temp file is gone before the error reaches the caller.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _manifest(self, pull: _Pull, obj: str, capability: str) -> tuple[bytes, str | None, RegistryHost]:
        candidates = [h for h in pull.hosts if h.can(capability)]
        if not candidates:
            source = next((h.source for h in pull.hosts if h.source), "the registry config")
            raise PullError(f"pulling {pull.ref}: no host in {source} has the {capability!r} capability", reason="registry_error")
        last: PullError | None = None
        for host in candidates:
            creds = select_credentials(pull.auth, self._credentials, host.host)
            try:
                async with self._client.get(host, f"/{pull.ref.path}/manifests/{obj}", ACCEPT, pull.scope, creds, pull.ref.string()) as response:
                    body = await self._client.read_limited(response, MAX_MANIFEST_BYTES, f"manifest {obj}", pull.ref.string())
                    header_digest = response.headers.get("docker-content-digest")
                    if header_digest and header_digest.startswith("sha256:") and header_digest != sha256_digest(body):
                        raise PullError(
                            f"pulling {pull.ref}: manifest from {host.host} does not match its Docker-Content-Digest {header_digest}",
                            reason="digest_mismatch",
                        )
                    return body, response.headers.get("content-type"), host
            except PullError as err:
                if err.reason not in _FAILOVER:
                    raise
                if host is not candidates[-1]:
                    log.warning("pulling %s: %s; trying the next configured host", pull.ref, err)
                last = err
        assert last is not None
        raise last

    async def _store_small(self, digest: str, data: bytes) -> None:
        if not self._content.has(digest):
            await asyncio.to_thread(self._content.put, digest, data)

    async def _ensure_blob(self, pull: _Pull, desc: Descriptor, kind: str) -> None:
        if self._content.has(desc.digest):
            if kind == "layer":
                pull.reused.append(desc.digest)
                if self._metrics is not None:
                    self._metrics.layer_reused()
            return
        download = self._inflight.get(desc.digest)
        if download is None:
            task = asyncio.create_task(self._download(pull, desc, kind), name=f"download {desc.digest}")
            download = _Download(task)
            self._inflight[desc.digest] = download

            def forget(done: asyncio.Task[None], digest: str = desc.digest, mine: _Download = download) -> None:
                if self._inflight.get(digest) is mine:
                    del self._inflight[digest]
                if not done.cancelled():
                    done.exception()  # retrieved here; every waiter re-raises it from shield()

            task.add_done_callback(forget)
        else:
            log.debug("pulling %s: %s %s is already downloading; sharing it", pull.ref, kind, desc.digest)
        download.waiters += 1
        try:
            await asyncio.shield(download.task)
        except asyncio.CancelledError:
            download.waiters -= 1
            if download.waiters == 0 and not download.task.done():
                download.task.cancel()
                await asyncio.wait({download.task})
            raise
        download.waiters -= 1

    async def _download(self, pull: _Pull, desc: Descriptor, kind: str) -> None:
        candidates = [h for h in pull.hosts if h.can("pull")]
        if not candidates:
            raise PullError(f"pulling {pull.ref}: no configured host has the 'pull' capability", reason="registry_error")
        last: PullError | None = None
        for host in candidates:
            creds = select_credentials(pull.auth, self._credentials, host.host)
            for attempt in range(self._options.retries + 1):
                try:
                    await self._download_from(pull, host, creds, desc, kind)
                    return
                except InterruptedBody as err:
                    last = err
                    if attempt < self._options.retries:
                        await asyncio.sleep(backoff_delay(attempt, self._options))
                except PullError as err:
                    if err.reason not in _FAILOVER:
                        raise
                    last = err
                    break
            if host is not candidates[-1]:
                log.warning("pulling %s: %s; trying the next configured host", pull.ref, last)
        assert last is not None
        raise last

    async def _download_from(self, pull: _Pull, host: RegistryHost, creds: Credentials | None, desc: Descriptor, kind: str) -> None:
        what = f"{kind} {desc.digest}"
        ref = pull.ref.string()
        with self._content.open_writer(desc.digest, desc.size) as writer:
            async with self._client.get(host, f"/{pull.ref.path}/blobs/{desc.digest}", None, pull.scope, creds, ref) as response:
                if kind == "layer" and pull.started is not None:
                    pull.started(desc, writer.follow)
                next_report = time.monotonic() + _PROGRESS_EVERY
                async for chunk in self._client.iter_body(response, what, ref):
                    writer.write(chunk)
                    if self._metrics is not None:
                        self._metrics.bytes_pulled(len(chunk), pull.ref.domain)
                    if log.isEnabledFor(logging.DEBUG) and time.monotonic() >= next_report:
                        next_report = time.monotonic() + _PROGRESS_EVERY
                        log.debug("pulling %s: %s: %d of %d bytes", ref, what, writer.written, desc.size)
            # The commit fsyncs: off the event loop, and never abandoned half-way
            # (an abort racing a rename could leave either state), so a
            # cancellation waits for it and is re-raised after.
            commit = asyncio.ensure_future(asyncio.to_thread(writer.commit))
            try:
                await asyncio.shield(commit)
            except asyncio.CancelledError:
                await asyncio.wait({commit})
                raise
        log.debug("pulling %s: %s: done, %d bytes", ref, what, desc.size)
