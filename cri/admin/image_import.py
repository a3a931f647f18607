"""Admin.ImportImages: an archive streamed in chunks -> the images it holds (Images.import_archive).

The chunks arrive on the event loop; the archive is read in a thread
(decompression, hashing, writing blobs), so the two meet in ``ChunkPipe``:
a bounded queue (at most 8 chunks of 1 MiB in memory) that blocks the
reader when empty and the sender when full.  When the sender goes away
half-way, the pipe is broken: the reading thread fails, the import keeps
nothing, and the call ends CANCELLED.  When the import fails first (a
malformed archive), the rest of the stream is not read and the error, naming
the archive entry, is the answer.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Sequence
from typing import Any

from dockyard.api import admin_pb2 as pb
from dockyard.cri import errors
from dockyard.cri.image.platform import Platform
from dockyard.cri.server.images import Images

from .platform_option import parse_platform

_DEPTH = 8
_EOF = b""


class PipeBroken(errors.Cancelled):
    """The sender of the archive went away before its end."""


class ChunkPipe:
    """Chunks from the event loop to a reading thread (``read``, file-like)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(_DEPTH)
        self._ended = False

    def read(self, n: int = -1, /) -> bytes:
        """The next chunk (any size), b"" at the end; PipeBroken if the sender went away."""
        if self._ended:
            return _EOF
        item = self._queue.get()
        if item is None:
            self._ended = True
            raise PipeBroken("the archive stream ended before its end (the client went away)")
        if item == _EOF:
            self._ended = True
        return item

    async def put(self, data: bytes, reader: asyncio.Future[Any]) -> bool:
        """Hand ``data`` over; False once the reader is done (it needs no more)."""
        while not reader.done():
            try:
                self._queue.put_nowait(data)
                return True
            except queue.Full:
                try:
                    await asyncio.to_thread(self._queue.put, data, True, 0.5)
                    return True
                except queue.Full:
                    continue
        return False

    def break_(self) -> None:
        """Wake the reader with an error (the sender is gone); never blocks."""
        while True:
            try:
                self._queue.put_nowait(None)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()  # the reader will not need what it has not read
                except queue.Empty:
                    pass


async def import_images(images: Images, chunks: AsyncIterator[pb.ImportChunk]) -> pb.ImportResponse:
    first = await anext(chunks, None)
    if first is None:
        raise errors.InvalidArgument("archive: the stream is empty")
    platform = parse_platform(first.options.platform, "options.platform")
    base_name = first.options.base_name
    if base_name:
        try:
            ref = images.parse_reference(base_name)
        except errors.InvalidArgument as err:
            raise errors.InvalidArgument(f"options.base_name: {err.message}") from err
        if f"{ref.repository}:latest" != ref.string() or base_name.endswith(":latest"):
            raise errors.InvalidArgument(f"options.base_name: {errors.shorten(base_name)!r} must be a repository, "
                                         "without tag or digest")
        base_name = ref.repository
    pipe = ChunkPipe()
    reading: asyncio.Future[Sequence[Any]] = asyncio.ensure_future(
        images.import_archive(pipe, platform or Platform.host(), base_name))
    try:
        if first.data:
            await pipe.put(bytes(first.data), reading)
        async for chunk in chunks:
            # An empty chunk carries nothing (and b"" is the pipe's end mark).
            if chunk.data and not await pipe.put(bytes(chunk.data), reading):
                break
        await pipe.put(_EOF, reading)
    except BaseException:
        pipe.break_()
        await asyncio.wait({reading})
        if not reading.cancelled():
            reading.exception()  # the import's own failure (PipeBroken) is this one's consequence
        raise
    records = await reading
    return pb.ImportResponse(images=[
        pb.ImportedImage(id=r.id, names=list(r.repo_tags), manifest_digest=r.blobs[0] if r.blobs else "", size=r.size)
        for r in records
    ])
