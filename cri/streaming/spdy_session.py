"""An asyncio SPDY session over any byte pipe (a TCP connection after the
HTTP upgrade, or WebSocket messages when SPDY is tunnelled).

``spdy.Connection`` does the protocol; this runs its read loop, queues each
stream's data, and flushes what the protocol wants written.  Writes go out in
the order the protocol produced them: each operation appends to the
connection's buffer synchronously and the flush takes the whole buffer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Protocol

from . import spdy

log = logging.getLogger(__name__)


class BytePipe(Protocol):
    async def read(self) -> bytes: ...          # b"" at EOF
    async def write(self, data: bytes) -> None: ...
    async def close(self) -> None: ...


class TcpPipe:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read(self) -> bytes:
        return await self.reader.read(64 * 1024)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass  # the peer is gone: the close is done either way


@dataclass(eq=False)
class SpdyStream:
    session: SpdySession
    stream_id: int
    headers: spdy.Headers
    _queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    ended: bool = False       # peer FIN or reset seen (queue got b"")
    reset: bool = False

    async def read(self) -> bytes:
        """Next chunk from the peer; b"" once it closed its side."""
        if self.ended and self._queue.empty():
            return b""
        data = await self._queue.get()
        if data:
            self.session.conn.acknowledge(self.stream_id, len(data))
            await self.session.flush()
        return data

    async def write(self, data: bytes) -> None:
        if self.reset or self.session.closed.is_set():
            raise ConnectionResetError(f"SPDY stream {self.stream_id} is gone")
        if data:
            self.session.conn.send_data(self.stream_id, data)
            await self.session.flush()

    async def close(self) -> None:
        """Half-close our side (FIN); idempotent, quiet on a gone stream."""
        st = self.session.conn.streams.get(self.stream_id)
        if st is None or st.state not in (spdy.StreamState.OPEN, spdy.StreamState.HALF_CLOSED_REMOTE):
            return
        self.session.conn.send_data(self.stream_id, b"", fin=True)
        await self.session.flush()

    def _deliver(self, data: bytes) -> None:
        if data:
            self._queue.put_nowait(data)

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            self._queue.put_nowait(b"")


class SpdySession:
    """Server side of one SPDY session."""

    def __init__(self, pipe: BytePipe, initial: bytes = b"") -> None:
        self.pipe = pipe
        self.conn = spdy.Connection(client=False)
        self.streams: dict[int, SpdyStream] = {}
        self.incoming: asyncio.Queue[SpdyStream | None] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.error: str | None = None
        self._initial = initial
        self._write_lock = asyncio.Lock()

    async def flush(self) -> None:
        async with self._write_lock:
            data = self.conn.data_to_send()
            if data and not self.closed.is_set():
                try:
                    await self.pipe.write(data)
                except (ConnectionError, OSError) as err:
                    self._mark_closed(f"write failed: {err}")

    async def run(self) -> None:
        """The read loop; returns when the peer closes or breaks the session."""
        data = self._initial
        try:
            while True:
                if data:
                    try:
                        events = self.conn.receive_data(data)
                    except spdy.ProtocolError as err:
                        self.error = err.message
                        log.info("SPDY session error: %s", err.message)
                        await self.flush()   # the GOAWAY
                        return
                    for ev in events:
                        self._dispatch(ev)
                    await self.flush()
                try:
                    data = await self.pipe.read()
                except (ConnectionError, OSError) as err:
                    self.error = f"read failed: {err}"
                    return
                if not data:
                    return
        finally:
            self._mark_closed(self.error or "peer closed")

    def _mark_closed(self, why: str) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for st in self.streams.values():
            st.reset = True
            st._end()
        self.incoming.put_nowait(None)

    def _dispatch(self, ev: spdy.Event) -> None:
        if isinstance(ev, spdy.SynStream):
            opened = SpdyStream(self, ev.stream_id, ev.headers)
            self.streams[ev.stream_id] = opened
            self.incoming.put_nowait(opened)
        elif isinstance(ev, spdy.Data):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st._deliver(ev.data)
                if ev.fin:
                    st._end()
        elif isinstance(ev, spdy.RstStream):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.reset = True
                st._end()
        elif isinstance(ev, spdy.StreamEnded):
            st = self.streams.pop(ev.stream_id, None)
            if st is not None:
                st._end()
        elif isinstance(ev, spdy.GoAway):
            # The peer opens no more streams; running ones may finish.
            self.incoming.put_nowait(None)

    async def accept(self, timeout: float) -> SpdyStream | None:
        """The next stream the peer opens (already answered with SYN_REPLY),
        or None when the session ends or ``timeout`` passes."""
        try:
            st = await asyncio.wait_for(self.incoming.get(), timeout)
        except TimeoutError:
            return None
        if st is None:
            self.incoming.put_nowait(None)   # stays "ended" for later calls
            return None
        if st.stream_id in self.conn.streams:
            self.conn.reply(st.stream_id)
            await self.flush()
        return st

    def reject(self, stream: SpdyStream, status: spdy.RstStatus = spdy.RstStatus.REFUSED_STREAM) -> None:
        self.conn.reset_stream(stream.stream_id, status)
        stream.reset = True
        stream._end()

    async def close(self) -> None:
        """GOAWAY(OK) and close the pipe."""
        if not self.closed.is_set():
            self.conn.goaway(spdy.GoAwayStatus.OK)
            await self.flush()
        self._mark_closed("closed by server")
        await self.pipe.close()
