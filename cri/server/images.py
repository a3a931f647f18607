"""The image service's glue: pull -> unpack the layer chain -> record; remove -> GC.

``Images`` is what the ImageService RPC modules call.  It owns no storage of
its own; it joins the registry Puller, the content store, the overlay
snapshotter and the image store:

    PullImage(ref, auth)
      parse the reference (InvalidArgument naming it)
      Puller.pull: manifest, config and layers into the content store, verified
      each layer unpacked as soon as its blob is in (layer_unpack.py: staged
          in worker threads, a few at once), then committed in order on its
          parent chain; diff_ids come from config.rootfs
      ImageStore.put(record): id = config digest, the tag and the repo digest

Two PullImage calls for the same reference with the same credentials share
one task (the second awaits the first's result); a pull cancelled by its
caller keeps running for any other waiter.  ``shutdown()`` cancels them all.

Garbage collection deletes every blob and committed snapshot that no image
record references, no pull or import in flight holds (its lease,
cri/image/leases.py, which says why that is race-free) and no container's
rootfs is built on.  It runs beside pulls, so RemoveImage collects at once
and answers when the space is free, however many pulls overlap; GC runs one
at a time, and a request already covered by a GC that started after it
returns without another.  A failed pull collects too, so that it keeps
nothing.  A GC that fails is logged, not raised: the record is gone either
way, and the next GC takes what this one left.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, Protocol

from dockyard.cri import errors, faults
from dockyard.cri.image.archive import export, layout, reader
from dockyard.cri.image.leases import Leases
from dockyard.cri.server.record import import_record
from dockyard.cri.snapshot.unpack import decompressed, sniff_compression
from dockyard.cri.server.layer_unpack import LayerUnpacker

log = logging.getLogger("dockyard.cri.images")


# --- what the glue needs from the other parts (their real classes fit these) ---


class ContentLike(reader.ContentLike, Protocol):
    def path(self, digest: str) -> str: ...
    def read(self, digest: str) -> bytes: ...
    def put(self, digest: str, data: bytes) -> str: ...
    def delete(self, digest: str) -> None: ...
    def digests(self) -> set[str]: ...
    def usage(self) -> tuple[int, int]: ...


class SnapshotterLike(Protocol):
    root: str

    def chain_of(self, parent_chain_id: str | None, diff_id: str) -> str: ...
    def unpack(self, layer_path: str, media_type: str, diff_id: str, parent_chain_id: str | None) -> str: ...
    def stage(self, layer_path: str, media_type: str, diff_id: str, chain: str, source: Any = None) -> Any: ...
    def flush(self, staged: Any) -> None: ...
    def commit_staged(self, staged: Any, parent: str | None) -> str: ...
    def discard(self, staged: Any) -> None: ...
    def committed(self) -> set[str]: ...
    def in_use(self) -> set[str]: ...
    def detach_committed(self, chain_id: str) -> Callable[[], None]: ...
    def usage(self) -> tuple[int, int]: ...


class RecordLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def repo_tags(self) -> Any: ...
    @property
    def repo_digests(self) -> Any: ...


class ImageStoreLike(Protocol):
    def put(self, record: Any) -> Any: ...
    def put_all(self, records: Sequence[Any]) -> Any: ...
    def get(self, ref_or_id: str) -> Any: ...
    def list(self) -> Any: ...
    def remove(self, ref_or_id: str) -> Any: ...
    def referenced_blobs(self) -> set[str]: ...
    def referenced_chains(self) -> set[str]: ...
    def usage(self) -> tuple[int, int]: ...


class PullerLike(Protocol):
    async def pull(self, ref: Any, auth: Any, platform: Any = None, on_layer: Any = None,
                   on_layer_start: Any = None) -> Any: ...


class PullMetricsLike(Protocol):
    def pull_started(self) -> None: ...
    def pull_finished(self, seconds: float, failure_reason: str | None, registry: str = "") -> None: ...


class RecordFactory(Protocol):
    def __call__(self, pulled: Any, chain_ids: list[str], size: int) -> Any: ...


class ReferenceParser(Protocol):
    def __call__(self, text: str) -> Any: ...


# Failure reason (metrics label) of a non-PullError domain error during a pull.
_FAILURE_REASONS: tuple[tuple[type[errors.CriError], str], ...] = (
    (errors.NotFound, "not_found"),
    (errors.Unauthenticated, "unauthorized"),
    (errors.PermissionDenied, "unauthorized"),
    (errors.InvalidArgument, "bad_layer"),
    (errors.DeadlineExceeded, "timeout"),
    (errors.Cancelled, "cancelled"),
)


def failure_reason(err: BaseException) -> str:
    if isinstance(err, errors.PullError):
        return err.reason
    if isinstance(err, asyncio.CancelledError):
        return "cancelled"
    for cls, reason in _FAILURE_REASONS:
        if isinstance(err, cls):
            return reason
    if isinstance(err, errors.CriError):
        return "registry_error"
    return "internal"


def layer_diff_ids(config: dict[str, Any], layer_count: int, ref: str) -> list[str]:
    """config.rootfs.diff_ids, checked against the manifest's layer count."""
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise errors.PullError(f"image {ref}: config has no rootfs.diff_ids list", reason="bad_layer")
    if len(diff_ids) != layer_count:
        raise errors.PullError(
            f"image {ref}: manifest has {layer_count} layers but config.rootfs.diff_ids has {len(diff_ids)}",
            reason="bad_layer",
        )
    return list(diff_ids)


def auth_fingerprint(auth: object) -> str:
    """Key for sharing pulls: equal credentials, equal key; never logged or stored."""
    return hashlib.sha256(repr(auth).encode()).hexdigest() if auth is not None else ""


class Images:
    def __init__(
        self,
        *,
        content: ContentLike,
        snapshotter: SnapshotterLike,
        store: ImageStoreLike,
        puller: PullerLike,
        metrics: PullMetricsLike,
        parse_reference: ReferenceParser,
        make_record: RecordFactory,
        leases: Leases | None = None,
    ) -> None:
        self.content = content
        self.snapshotter = snapshotter
        self.store = store
        self.puller = puller
        self.metrics = metrics
        self.parse_reference = parse_reference
        self.make_record = make_record
        # The content store's on_use hook must be this object's hold (daemon.py).
        self.leases = leases or Leases()
        self._inflight: dict[tuple[str, str, str], asyncio.Task[Any]] = {}
        # GC runs one at a time (_gc_turn); requests and GC starts are numbered so
        # a request that a GC started after it has covered needs no GC of its own.
        self._gc_turn = asyncio.Lock()
        self._gc_requested = 0
        self._gc_covered = 0
        # One GC at a time in threads too (startup recovery calls collect_garbage).
        self._gc_lock = threading.Lock()
        # The last GC kept snapshots only containers use: run again when a
        # container's (or a pod's) rootfs is released.
        self._kept_for_containers = False

    # --- pull ---

    async def pull(self, ref_text: str, auth: object, platform: Any = None) -> Any:
        """Pull ``ref_text`` (for ``platform``, default the node's) and return its ImageRecord;
        shares an identical pull in flight."""
        ref = self.parse_reference(ref_text)
        key = (ref.string(), auth_fingerprint(auth), platform.string() if platform is not None else "")
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._pull(ref, auth, platform), name=f"pull {key[0]}")
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._forget, key))
        # shield: one caller going away must not cancel the others' pull.
        return await asyncio.shield(task)

    def _forget(self, key: tuple[str, str, str], task: asyncio.Task[Any]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: every waiter already got it

    async def _pull(self, ref: Any, auth: object, platform: Any = None) -> Any:
        name = ref.string()
        self.metrics.pull_started()
        start = time.monotonic()
        reason: str | None = None
        unpacker = LayerUnpacker(self.snapshotter, self.content.path, self.snapshotter.chain_of, self.leases.hold)
        try:
            with self.leases.lease():
                log.info("pulling %s", name)
                # Layers unpack as their bytes arrive (layer_unpack.py), each
                # chain held in this pull's lease before it is looked up.
                pulled = await self.puller.pull(ref, auth, platform, on_layer=unpacker.layer_ready,
                                                on_layer_start=unpacker.layer_started)
                faults.point("PullImage/downloaded")
                diff_ids = layer_diff_ids(pulled.config, len(pulled.layers), name)
                chain_ids = await unpacker.commit_all(pulled.layers, diff_ids)
                size = sum(layer.size for layer in pulled.layers)
                record = self.make_record(pulled, chain_ids, size)
                await asyncio.to_thread(self.store.put, record)
            log.info("pulled %s as %s in %.2fs", name, record.id, time.monotonic() - start)
            return record
        except BaseException as err:
            reason = failure_reason(err)
            if isinstance(err, errors.CriError) and name not in err.message:
                # Errors from the stores name a blob or a file; the caller
                # needs to know which image pull that was.
                err.message = f"pulling {name}: {err.message}"
                err.args = (err.message,)
            log.info("pull of %s failed (%s)", name, reason)
            raise
        finally:
            await unpacker.close()
            self.metrics.pull_finished(time.monotonic() - start, reason, ref.domain)
            if reason is not None:
                await self.request_gc()  # what the failed pull wrote, no lease holds any more

    async def shutdown(self) -> None:
        """Cancel every pull in flight and wait for them (their writers abort)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- read side ---

    def get(self, ref_or_id: str) -> Any:
        """The record of an image by id, tag or digest reference (NotFound names it)."""
        return self.store.get(self._normalise(ref_or_id))

    def list(self) -> list[Any]:
        return list(self.store.list())

    def config(self, record: Any) -> dict[str, Any]:
        data = json.loads(self.content.read(record.id))
        if not isinstance(data, dict):
            raise errors.Internal(f"image {record.id}: config blob is not a JSON object")
        return data

    def _normalise(self, ref_or_id: str) -> str:
        """Ids pass through; anything else is parsed so `busybox` finds docker.io/library/busybox:latest."""
        text = ref_or_id.strip()
        if not text:
            raise errors.InvalidArgument("image reference is empty")
        if text.startswith("sha256:") or _looks_like_id(text):
            return text
        return str(self.parse_reference(text).string())

    # --- remove + GC ---

    async def remove(self, ref_or_id: str) -> Any:
        """Remove the image (all its tags and digests) and GC what it alone used."""
        record = self.get(ref_or_id)
        await asyncio.to_thread(self.store.remove, record.id)
        faults.point("RemoveImage/record-removed")
        await self.request_gc()
        return record

    async def request_gc(self) -> None:
        """Collect garbage now (after a GC already running); never raises a GC failure."""
        self._gc_requested += 1
        wanted = self._gc_requested
        async with self._gc_turn:
            if self._gc_covered >= wanted:
                return  # a GC that started after this request has run
            started = self._gc_requested
            try:
                await asyncio.to_thread(self.collect_garbage)
            except (errors.CriError, OSError) as err:
                log.warning("garbage collection failed (the next one retries): %s", err)
                return
            self._gc_covered = started

    async def rootfs_released(self) -> None:
        """A container or pod released its snapshot: collect what only it kept."""
        if self._kept_for_containers:
            await self.request_gc()

    def collect_garbage(self) -> tuple[int, int]:
        """Delete blobs and committed snapshots nothing needs; (blobs, snapshots) removed.

        Kept: what an image record references, what a lease holds (a pull or
        import in flight) and the chains a container's or pod's rootfs is
        built on (``in_use``; an image removed while a container of it runs
        leaves its layers to that container, and the GC that follows the
        container's removal takes them).  The last look at records and
        leases and the deletion happen under the leases' lock (leases.py);
        a snapshot's files are deleted after it is forgotten, outside it.
        A snapshot that became busy meanwhile (a container prepared on it)
        is kept for the next run.  Blocking: call in a thread."""
        with self._gc_lock:
            listed = self.content.digests()
            blobs = 0
            with self.leases.lock:
                keep = self.store.referenced_blobs() | self.leases.held()
                for digest in sorted(listed - keep):
                    try:
                        self.content.delete(digest)
                    except errors.NotFound:
                        continue
                    blobs += 1
            committed = self.snapshotter.committed()
            deletions: list[Callable[[], None]] = []
            with self.leases.lock:
                unreferenced = committed - self.store.referenced_chains() - self.leases.held()
                chains = unreferenced - self.snapshotter.in_use()
                self._kept_for_containers = len(chains) < len(unreferenced)
                for chain_id in sorted(chains):
                    try:
                        deletions.append(self.snapshotter.detach_committed(chain_id))
                    except errors.FailedPrecondition as err:
                        log.info("garbage collection keeps snapshot %s: %s", chain_id, err.message)
            for delete in deletions:
                delete()
        if blobs or deletions:
            log.info("garbage collected %d blobs and %d snapshots", blobs, len(deletions))
        return blobs, len(deletions)

    # --- archives (dockyard images import / export) ---

    async def import_archive(self, source: reader.Readable, platform: Any, base_name: str) -> Sequence[Any]:
        """Import every image of the archive ``source`` holds (plain, gzip or zstd; its
        blocking reads are made in a thread), under its names; return their records.  As safe as a pull: blobs
        verified as they are stored, layers through the same unpacker and checked
        against the configs' diff ids, every record written at once at the end; on
        any failure nothing of it is kept (GC takes what its lease held)."""
        try:
            with self.leases.lease():
                entries = await asyncio.to_thread(
                    lambda: reader.read_archive(decompressed(source, "archive"), self.content))
                faults.point("ImportImages/blobs-written")
                images = await asyncio.to_thread(
                    layout.images_in, entries, self.content.read, self._compression_of, platform, base_name,
                    self.parse_reference)
                records: builtins.list[Any] = []
                for image in images:
                    if not image.manifest_in_archive:
                        await asyncio.to_thread(self.content.put, image.manifest_digest, image.manifest)
                    chain_ids = await self._unpack_archive_image(image)
                    records.append(import_record(image, chain_ids, self.parse_reference))
                stored = await asyncio.to_thread(self.store.put_all, records)
                faults.point("ImportImages/recorded")
            log.info("imported %s", ", ".join(f"{r.id} ({' '.join(r.repo_tags) or 'no name'})" for r in stored))
            return tuple(stored)
        except BaseException:
            await self.request_gc()
            raise

    async def _unpack_archive_image(self, image: layout.ArchiveImage) -> builtins.list[str]:
        chain_ids: builtins.list[str] = []
        parent: str | None = None
        for layer, diff_id in zip(image.layers, image.diff_ids):
            self.leases.hold(self.snapshotter.chain_of(parent, diff_id))
            try:
                parent = await asyncio.to_thread(
                    self.snapshotter.unpack, self.content.path(layer.digest), layer.media_type, diff_id, parent)
            except errors.PullError as err:  # what the layer holds is the archive's fault
                raise errors.InvalidArgument(f"{image.source}: {err.message}") from err
            chain_ids.append(parent)
            faults.point("ImportImages/unpacked-a-layer")
        return chain_ids

    def _compression_of(self, digest: str) -> str:
        with open(self.content.path(digest), "rb") as f:
            return sniff_compression(f.read(8))

    def export_archive(self, refs: Sequence[str], out: BinaryIO) -> None:
        """Write the images ``refs`` name as one archive into ``out`` (blocking; a
        thread).  NotFound names a reference that names no image; the blobs are
        held while they are written, so a RemoveImage beside it waits its turn."""
        with self.leases.lease():
            # Two references to one image export it once, with all its names.
            records = list({r.id: r for r in (self.get(ref) for ref in refs)}.values())
            images = [self._export_image(record) for record in records]
            export.write_layout(images, self.content.path, out)

    def _export_image(self, record: Any) -> export.ExportImage:
        for digest in (record.id, *record.layers):
            if not self.content.has(digest):
                raise errors.FailedPrecondition(f"image {record.id}: blob {digest} is missing from the content store")
        manifest: bytes | None = None
        for digest in record.blobs:
            if self.content.has(digest):
                data = self.content.read(digest)
                try:
                    doc = json.loads(data)
                except ValueError:
                    continue
                if export.describes(doc, record.id):
                    manifest, media_type = data, export.manifest_media_type(doc)
                    break
        if manifest is None:
            layers = [(d, os.path.getsize(self.content.path(d)), self._compression_of(d)) for d in record.layers]
            manifest = export.made_manifest(record.id, os.path.getsize(self.content.path(record.id)), layers)
            media_type = layout.OCI_MANIFEST
        return export.ExportImage(
            names=tuple(record.repo_tags), manifest=manifest, manifest_media_type=media_type,
            manifest_digest="sha256:" + hashlib.sha256(manifest).hexdigest(), config_digest=record.id,
            layers=tuple(record.layers))

    # --- ImageFsInfo ---

    def usage(self) -> tuple[int, int]:
        """(bytes, inodes) of the image filesystem: the content store, the snapshots
        (committed layers, containers' writable layers, unpacks under way) and the
        image records, as du would count those trees."""
        parts = (self.content.usage(), self.snapshotter.usage(), self.store.usage())
        return sum(b for b, _ in parts), sum(i for _, i in parts)


def _looks_like_id(text: str) -> bool:
    """A bare hex image id or a prefix of one (>= 12 hex digits), as crictl prints them."""
    return 12 <= len(text) <= 64 and all(c in "0123456789abcdef" for c in text)
