"""WebSocket transports of the streaming server (RFC 6455 through wsproto).

Kubernetes' channel protocols put a channel number in the first byte of each
binary message:

=====  ==========  =========================================
 0     stdin       client -> server
 1     stdout      server -> client
 2     stderr      server -> client
 3     error       server -> client: the JSON Status (v4+), or
                   the error text (v1), nothing on success
 4     resize      client -> server: {"Width":..,"Height":..}
=====  ==========  =========================================

``v5.channel.k8s.io`` adds a close signal: a message ``[255, channel]`` says
the sender has finished writing that channel (the client's stdin EOF).  Under
``v4.channel.k8s.io`` stdin has no EOF short of closing the connection.  The
client (client-go's WebSocket executor) ignores per-channel closes from the
server: its readers see EOF when the server ends the connection with a
normal (1000) close, so that is how a session ends, after the error channel.

Port-forward over WebSocket comes in two shapes: crictl (and the API server
since Kubernetes 1.30) tunnel a whole SPDY session in binary messages under
``SPDY/3.1+portforward.k8s.io`` (``MessagePipe`` makes that a byte pipe for
``SpdySession``); kubelet's older ``v4.channel.k8s.io`` port-forward maps
port i to channels 2i (data) and 2i+1 (error), see portforward.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from wsproto.connection import Connection, ConnectionType, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.frame_protocol import CloseReason

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_SIGNAL = 255
# Exec and attach over WebSocket, in the server's order of preference.
# ``channel.k8s.io`` (v1) is what the oldest WebSocket clients offer,
# Kubernetes' own [Conformance] spec "Pods should support remote command
# execution over websockets" among them; kubelet's server still serves it
# with the same channels, its error channel carrying a plain-text message
# (as v2/v3 do over SPDY), never a JSON Status.
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")


class ChannelError(Exception):
    """A message that breaks the channel protocol."""


def encode(channel: int, data: bytes) -> bytes:
    if not 0 <= channel <= 255:
        raise ValueError(f"channel {channel} out of range")
    return bytes([channel]) + data


@dataclass(frozen=True, slots=True)
class ChannelData:
    channel: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    channel: int


def decode(message: bytes, *, v5: bool) -> ChannelData | ChannelClosed:
    if not message:
        raise ChannelError("empty message: no channel byte")
    if message[0] == CLOSE_SIGNAL and v5:
        if len(message) != 2:
            raise ChannelError(f"close signal of {len(message)} bytes, want 2")
        return ChannelClosed(message[1])
    return ChannelData(message[0], message[1:])


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str | None:
    for proto in supported:
        if proto in offered:
            return proto
    return None


class WsPipe:
    """One server-side WebSocket over a TCP connection: whole binary
    messages in and out; pings answered; the close handshake done."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, initial: bytes = b"") -> None:
        self.reader, self.writer = reader, writer
        self.ws = Connection(ConnectionType.SERVER)
        self._initial = initial
        self._partial = bytearray()
        self._messages: list[bytes] = []
        self._write_lock = asyncio.Lock()
        self.peer_closed = False

    async def _send(self, data: bytes) -> None:
        async with self._write_lock:
            self.writer.write(data)
            await self.writer.drain()

    async def receive(self) -> bytes | None:
        """The next binary message; None once the peer closed or vanished."""
        while not self._messages:
            if self.peer_closed:
                return None
            data = self._initial
            self._initial = b""
            if not data:
                try:
                    data = await self.reader.read(64 * 1024)
                except (ConnectionError, OSError):
                    data = b""
            self.ws.receive_data(data or None)
            if not data:
                self.peer_closed = True
            for ev in self.ws.events():
                if isinstance(ev, BytesMessage):
                    self._partial += ev.data
                    if ev.message_finished:
                        self._messages.append(bytes(self._partial))
                        self._partial.clear()
                elif isinstance(ev, TextMessage):
                    await self.close(1003, "binary messages only")
                    self.peer_closed = True
                elif isinstance(ev, Ping):
                    await self._send(self.ws.send(ev.response()))
                elif isinstance(ev, CloseConnection):
                    if self.ws.state is ConnectionState.REMOTE_CLOSING:
                        await self._send(self.ws.send(ev.response()))
                    self.peer_closed = True
        return self._messages.pop(0)

    async def send(self, data: bytes) -> None:
        if self.ws.state is not ConnectionState.OPEN:
            raise ConnectionResetError("WebSocket is closing")
        await self._send(self.ws.send(BytesMessage(data=data)))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.ws.state is ConnectionState.OPEN:
            try:
                await self._send(self.ws.send(CloseConnection(code=code, reason=reason)))
            except (ConnectionError, OSError):
                pass  # the peer is gone: nothing to tell it

    async def shutdown(self) -> None:
        """Normal close, a short wait for the peer's answer, then the socket."""
        await self.close(CloseReason.NORMAL_CLOSURE)
        try:
            async with asyncio.timeout(2):
                while await self.receive() is not None:
                    pass
        except TimeoutError:
            pass  # the peer did not answer the close: drop it anyway
        if not self.writer.is_closing():
            self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class MessagePipe:
    """A WebSocket as a byte pipe (SPDY tunnelled in binary messages)."""

    def __init__(self, ws: WsPipe) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        msg = await self.ws.receive()
        while msg == b"":
            msg = await self.ws.receive()
        return msg or b""

    async def write(self, data: bytes) -> None:
        await self.ws.send(data)

    async def close(self) -> None:
        await self.ws.shutdown()


@dataclass(eq=False)
class _InChannel:
    queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    ended: bool = False

    async def read(self) -> bytes:
        if self.ended and self.queue.empty():
            return b""
        return await self.queue.get()

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.queue.put_nowait(b"")


@dataclass(eq=False)
class _OutChannel:
    mux: ChannelMux
    channel: int

    async def write(self, data: bytes) -> None:
        if data:
            await self.mux.ws.send(encode(self.channel, data))

    async def close(self) -> None:
        # client-go ignores per-channel closes; the connection's close ends it.
        return None


class ChannelMux:
    """Demultiplexes channel messages into per-channel sources."""

    def __init__(self, ws: WsPipe, *, v5: bool, inputs: tuple[int, ...]) -> None:
        self.ws = ws
        self.v5 = v5
        self.inputs = {ch: _InChannel() for ch in inputs}
        self.gone = asyncio.Event()

    def source(self, channel: int) -> _InChannel:
        return self.inputs[channel]

    def sink(self, channel: int) -> _OutChannel:
        return _OutChannel(self, channel)

    async def run(self) -> None:
        """Read loop: until the client closes (then ``gone`` is set)."""
        try:
            while (msg := await self.ws.receive()) is not None:
                try:
                    item = decode(msg, v5=self.v5)
                except ChannelError:
                    await self.ws.close(1002, "bad channel message")
                    break
                chan = self.inputs.get(item.channel)
                if chan is None:
                    continue   # output channels echoing nothing, or unknown: ignored
                if isinstance(item, ChannelClosed):
                    chan.end()
                elif item.data:
                    chan.queue.put_nowait(item.data)
        finally:
            for chan in self.inputs.values():
                chan.end()
            self.gone.set()
