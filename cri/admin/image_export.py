"""Admin.ExportImages: images -> one OCI image layout tar (cri/image/archive/export.py), streamed.

The archive is written in a thread (reading blobs, building the tar) into
``ChunkSink``, which cuts it into 1 MiB messages on a bounded queue; the
call sends them as they come.  A client that goes away stops the writer at
its next chunk, and the blobs it held are released.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator

from dockyard.api import admin
from dockyard.api import admin_pb2 as pb
from dockyard.cri import errors
from dockyard.cri.server.images import Images

_DEPTH = 8


class _Stopped(Exception):
    """The receiving side went away; the writer gives up."""


class ChunkSink:
    """A write-only file for the writing thread; chunks come out of ``chunks``."""

    def __init__(self) -> None:
        self.chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(_DEPTH)
        self.stop = threading.Event()
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) >= admin.CHUNK_BYTES:
            self._send(bytes(self._buffer[:admin.CHUNK_BYTES]))
            del self._buffer[:admin.CHUNK_BYTES]
        return len(data)

    def finish(self, error: BaseException | None) -> None:
        if error is None and self._buffer:
            self._send(bytes(self._buffer))
        self._send(error)

    def _send(self, item: bytes | BaseException | None) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped()
            try:
                self.chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue


def _write(images: Images, refs: list[str], sink: ChunkSink) -> None:
    try:
        images.export_archive(refs, sink)  # type: ignore[arg-type]  # a file that only writes
    except _Stopped:
        return
    except BaseException as err:  # handed to the caller, which raises it in the call
        try:
            sink.finish(err)
        except _Stopped:
            pass
        return
    try:
        sink.finish(None)
    except _Stopped:
        pass


async def export_images(images: Images, request: pb.ExportRequest) -> AsyncIterator[pb.ExportChunk]:
    refs = list(request.images)
    if not refs:
        raise errors.InvalidArgument("images: name at least one image to export")
    for i, ref in enumerate(refs):
        if not ref.strip():
            raise errors.InvalidArgument(f"images[{i}]: empty image reference")
    sink = ChunkSink()
    writer = asyncio.ensure_future(asyncio.to_thread(_write, images, refs, sink))
    try:
        while True:
            item = await asyncio.to_thread(sink.chunks.get)
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            yield pb.ExportChunk(data=item)
    finally:
        sink.stop.set()
        await asyncio.wait({writer})
