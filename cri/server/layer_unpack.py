"""Unpacking a pull's layers while the others still download.

A pull used to download every blob and then unpack the layers one after
another.  Here each layer is unpacked (``Snapshotter.stage``: into a temp
dir, its diff id checked) as soon as its blob is in the content store, at
most ``UNPACK_AT_ONCE`` at a time in worker threads, and the layers are
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

log = logging.getLogger("dockyard.cri.images")

UNPACK_AT_ONCE = 3


class StagingSnapshotter(Protocol):
    def stage(self, layer_path: str, media_type: str, diff_id: str, chain: str) -> Any: ...
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


class LayerUnpacker:
    """The staging tasks of one pull, started by the puller's ``on_layer`` hook."""

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

    def layer_ready(self, index: int, layer: Any, diff_ids: list[str]) -> None:
        if index in self._tasks or index >= len(diff_ids):
            return
        chain = chain_ids(diff_ids[: index + 1], self.chain_of)[-1]
        self.hold(chain)
        self._tasks[index] = asyncio.create_task(
            self._stage(layer.digest, layer.media_type, diff_ids[index], chain), name=f"unpack layer {index}")

    async def _stage(self, digest: str, media_type: str, diff_id: str, chain: str) -> Any:
        async with self._slots:
            staged = await asyncio.to_thread(self.snapshotter.stage, self.blob_path(digest), media_type, diff_id, chain)
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
