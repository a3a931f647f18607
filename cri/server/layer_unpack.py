"""Unpacking a pull's layers while they download.

A pull used to download every blob and then unpack the layers one after
another.  Here each layer is unpacked (``Snapshotter.stage``: into a temp
dir, its diff id checked) as its bytes arrive: ``layer_started`` follows
the blob's ingest file from the moment its download starts
(cri/content/follow.py), and ``layer_ready`` stages a blob that was already
in the store.  At most ``UNPACK_AT_ONCE`` stage at a time in worker
threads, and the layers are
committed in order once the pull has all of them (``commit_staged``: a
layer's snapshot is only valid on its parent chain).  A staged layer's files
are flushed to the disk (``flush``) as soon as it is staged, outside the
slot, so the writes overlap the layers still unpacking rather than waiting
for the commits at the end.

Why several at once pays on two cores: decompression (zlib, zstd), hashing
and the file writes release the GIL, so a layer of a few large files runs
mostly outside Python while a layer of many small files runs mostly inside
it; together they fill both cores where either alone fills one.  Measured
in bench/pull.py (README, results).

Following a download pays where a layer is slow to unpack: the layer of
21,176 small files in bench/pull.py's image used to wait for its whole blob
before its Python-bound unpack began (README, results).

A followed download that fails and is retried leaves its staging failed
with ``SourceAborted``; the retry's own start, or ``commit_all`` once the
blob is in, stages it again.

Failure and cancellation: nothing staged survives a failed pull.  A worker
thread cannot be interrupted, so ``close`` waits for every staging still
running and discards what it made; a daemon killed meanwhile leaves temp
dirs that the snapshotter's clean_temporary removes at the next start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from dockyard.cri import errors, faults
from dockyard.cri.content.follow import SourceAborted

log = logging.getLogger("dockyard.cri.images")

UNPACK_AT_ONCE = 3


class StagingSnapshotter(Protocol):
    def stage(self, layer_path: str, media_type: str, diff_id: str, chain: str, source: Any = None) -> Any: ...
    def flush(self, staged: Any) -> None: ...
    def commit_staged(self, staged: Any, parent: str | None) -> str: ...
    def discard(self, staged: Any) -> None: ...


def chain_ids(diff_ids: list[str], chain_of: Callable[[str | None, str], str]) -> list[str]:
    """The chain id of each layer on the ones below it (pure)."""
    out: list[str] = []
    parent: str | None = None
    for diff_id in diff_ids:
        parent = chain_of(parent, diff_id)
        out.append(parent)
    return out


class Source(Protocol):
    """A followed download (cri/content/follow.FollowingReader)."""

    def read(self, n: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


def _source_aborted(task: asyncio.Task[Any]) -> bool:
    return task.done() and not task.cancelled() and isinstance(task.exception(), SourceAborted)


class LayerUnpacker:
    """The staging tasks of one pull, started by the puller's ``on_layer_start``
    and ``on_layer`` hooks."""

    def __init__(self, snapshotter: StagingSnapshotter, blob_path: Callable[[str], str],
                 chain_of: Callable[[str | None, str], str], hold: Callable[[str], None] = lambda _: None,
                 at_once: int = UNPACK_AT_ONCE) -> None:
        self.snapshotter = snapshotter
        self.blob_path = blob_path
        self.chain_of = chain_of
        # The pull's lease (cri/image/leases.py): a chain is held before
        # staging asks whether it is committed, so GC cannot take it between.
        self.hold = hold
        self._slots = asyncio.Semaphore(at_once)
        self._tasks: dict[int, asyncio.Task[Any]] = {}

    def layer_started(self, index: int, layer: Any, diff_ids: list[str], follow: Callable[[str], Source]) -> None:
        """Its download began: unpack it from the bytes as they arrive."""
        if self._staging(index) or index >= len(diff_ids):
            return
        self._start(index, layer, diff_ids, follow(f"layer {layer.digest}"))

    def layer_ready(self, index: int, layer: Any, diff_ids: list[str]) -> None:
        """Its blob is in the store: unpack it, unless that is under way."""
        if self._staging(index) or index >= len(diff_ids):
            return
        self._start(index, layer, diff_ids, None)

    def _staging(self, index: int) -> bool:
        task = self._tasks.get(index)
        return task is not None and not _source_aborted(task)

    def _start(self, index: int, layer: Any, diff_ids: list[str], source: Source | None) -> None:
        chain = chain_ids(diff_ids[: index + 1], self.chain_of)[-1]
        self.hold(chain)
        self._tasks[index] = asyncio.create_task(
            self._stage(layer.digest, layer.media_type, diff_ids[index], chain, source), name=f"unpack layer {index}")

    def _stage_blocking(self, digest: str, media_type: str, diff_id: str, chain: str, source: Source | None) -> Any:
        # The source is closed by the thread that reads it, never under it.
        try:
            return self.snapshotter.stage(self.blob_path(digest), media_type, diff_id, chain, source)
        finally:
            if source is not None:
                source.close()

    async def _stage(self, digest: str, media_type: str, diff_id: str, chain: str, source: Source | None) -> Any:
        try:
            await self._slots.acquire()
        except BaseException:  # cancelled before any thread got the source
            if source is not None:
                source.close()
            raise
        try:
            staged = await asyncio.to_thread(self._stage_blocking, digest, media_type, diff_id, chain, source)
        finally:
            self._slots.release()
        if staged is not None:
            # Outside the slot: the next layer unpacks while this one's files
            # go to the disk (a cold zstd pull 2.45 -> 2.24 s; README, results).
            try:
                await asyncio.to_thread(self.snapshotter.flush, staged)
            except BaseException:
                await asyncio.to_thread(self.snapshotter.discard, staged)
                raise
        return staged

    async def commit_all(self, layers: tuple[Any, ...], diff_ids: list[str]) -> list[str]:
        """Wait for each layer's staging in order and commit it on its parent; the chain ids."""
        for i, layer in enumerate(layers):
            if i not in self._tasks:  # the puller called no hook for it (a fake, or an old puller)
                self.layer_ready(i, layer, diff_ids)
        chains: list[str] = []
        parent: str | None = None
        for i, chain in enumerate(chain_ids(diff_ids, self.chain_of)):
            try:
                staged = await self._tasks[i]
            except SourceAborted:
                # The download it followed was retried; the blob is in now.
                self._start(i, layers[i], diff_ids, None)
                staged = await self._tasks[i]
            if staged is not None:
                self._tasks.pop(i)  # committing it is ours now; close() must not discard it
                await asyncio.to_thread(self.snapshotter.commit_staged, staged, parent)
            chains.append(chain)
            parent = chain
            faults.point("PullImage/unpacked-a-layer")
        return chains

    async def close(self) -> None:
        """Wait for stagings still running (a failed or cancelled pull) and discard what they made."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        if not tasks:
            return
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for staged in results:
            if staged is not None and not isinstance(staged, BaseException):
                await asyncio.to_thread(self.snapshotter.discard, staged)
            elif isinstance(staged, errors.CriError):
                log.debug("a layer's unpack failed after the pull had: %s", staged.message)
