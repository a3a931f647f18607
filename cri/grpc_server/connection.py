"""The server side of one HTTP/2 connection carrying gRPC calls, without I/O
(in the manner of h11): bytes go in through ``receive``, which returns what
happened as events, and the bytes to write come out of ``data_to_send``.

What it keeps: each open stream's request (headers, then the one message's
bytes), flow control both ways, the peer's settings, and HPACK's decoding
table.  What it leaves to the caller: running the call, and the gRPC
status it ends with.

Assumptions and choices, each the usual one for a gRPC server:
- Requests are small next to the windows this side advertises (1 MiB a
  stream, 16 MiB the connection), so received data is credited back as
  soon as it is buffered; the bound on memory is the message size limit,
  past which a request's bytes are dropped (``RequestTooLarge``).
- Frames over 16 KiB (the size this side never raises), malformed frames
  and frames on streams never opened end the connection with GOAWAY, as
  RFC 9113 asks; frames for streams already closed are ignored (the peer
  may have sent them before it saw the end).
- Responses are flow controlled: data waits per stream until both the
  stream's and the connection's windows have room.  Headers are not.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from . import frames
from .hpack_decoder import Decoder, HeaderBlockError
from .messages import frame_message, status_block, trailers_only_block

STREAM_RECV_WINDOW = 1 << 20
CONN_RECV_WINDOW = 1 << 24
MAX_HEADER_BLOCK = 1 << 16  # HEADERS plus CONTINUATIONs, before decoding


@dataclass(frozen=True, slots=True)
class Request:
    """A whole request: headers (names lower case) and the body's bytes."""
    stream_id: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class RequestTooLarge:
    """The body passed ``max_body`` bytes; its bytes are being dropped."""
    stream_id: int
    headers: dict[str, str]
    size: int


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The peer reset a stream (RST_STREAM): nobody waits for its answer."""
    stream_id: int
    code: int


@dataclass(frozen=True, slots=True)
class WindowOpened:
    """The peer gave more room to send (WINDOW_UPDATE or SETTINGS)."""


@dataclass(frozen=True, slots=True)
class ConnectionFailed:
    """The peer broke the protocol; a GOAWAY is queued and the caller should
    write it and close."""
    code: int
    reason: str


Event = Request | RequestTooLarge | StreamReset | WindowOpened | ConnectionFailed


class _Stream:
    __slots__ = (
        "body",
        "headers",
        "headers_sent",
        "id",
        "pending",
        "pending_size",
        "recv_done",
        "recv_unacked",
        "send_window",
        "size",
        "too_large",
        "trailers",
    )

    def __init__(self, stream_id: int, headers: dict[str, str], send_window: int) -> None:
        self.id = stream_id
        self.headers = headers
        self.body: list[bytes] = []
        self.size = 0
        self.recv_done = False
        self.too_large = False
        self.recv_unacked = 0
        self.send_window = send_window
        self.pending: deque[bytes] = deque()
        self.pending_size = 0
        self.headers_sent = False
        self.trailers: bytes | None = None


class Connection:
    def __init__(self, *, max_body: int, max_streams: int = 4096) -> None:
        self.max_body = max_body
        self.max_streams = max_streams
        self.closed = False
        self._buf = b""
        self._preface_seen = False
        self._decoder = Decoder()
        self._streams: dict[int, _Stream] = {}
        self._blocked: dict[int, None] = {}  # streams with data waiting for a window, in order
        self._last_stream_id = 0
        self._goaway_sent = False
        self._send_window = frames.DEFAULT_WINDOW
        self._peer_initial_window = frames.DEFAULT_WINDOW
        self._peer_max_frame = frames.DEFAULT_MAX_FRAME
        self._recv_unacked = 0
        self._continuation: tuple[int, int, bytearray] | None = None
        self._out: list[bytes] = [
            frames.settings({
                frames.SETTINGS_MAX_CONCURRENT_STREAMS: max_streams,
                frames.SETTINGS_INITIAL_WINDOW_SIZE: STREAM_RECV_WINDOW,
            }),
            frames.window_update(0, CONN_RECV_WINDOW - frames.DEFAULT_WINDOW),
        ]

    # --- output ---------------------------------------------------------------

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def is_open(self, stream_id: int) -> bool:
        return stream_id in self._streams

    def pending_bytes(self, stream_id: int) -> int:
        """Response bytes of ``stream_id`` still waiting for the peer's window."""
        stream = self._streams.get(stream_id)
        return stream.pending_size if stream is not None else 0

    def send_headers(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.headers_sent:
            return
        stream.headers_sent = True
        self._out.append(frames.header_frames(stream_id, frames.RESPONSE_HEADERS, False, self._peer_max_frame))

    def send_message(self, stream_id: int, payload: bytes) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.trailers is not None:
            return
        if not stream.headers_sent:
            self.send_headers(stream_id)
        data = frame_message(payload)
        stream.pending.append(data)
        stream.pending_size += len(data)
        self._flush(stream)

    def end(self, stream_id: int, code: int, message: str = "") -> None:
        """The call's status: trailers after any data, or a trailers-only
        response when nothing was sent; the stream is done on this side."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.trailers is not None:
            return
        if not stream.headers_sent:
            stream.headers_sent = True
            stream.trailers = b""
            self._out.append(frames.header_frames(stream_id, trailers_only_block(code, message), True,
                                                  self._peer_max_frame))
            self._close_local(stream)
            return
        stream.trailers = status_block(code, message)
        self._flush(stream)

    def reset(self, stream_id: int, code: int = frames.CANCEL) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            self._blocked.pop(stream_id, None)
            self._out.append(frames.rst_stream(stream_id, code))

    def goaway(self) -> None:
        """No new streams from here on; those open may finish."""
        if not self._goaway_sent and not self.closed:
            self._goaway_sent = True
            self._out.append(frames.goaway(self._last_stream_id, frames.NO_ERROR))

    def _flush(self, stream: _Stream) -> None:
        pending = stream.pending
        while pending:
            room = min(self._send_window, stream.send_window, self._peer_max_frame)
            if room <= 0:
                self._blocked[stream.id] = None
                return
            chunk = pending[0]
            if len(chunk) <= room:
                pending.popleft()
            else:
                chunk, pending[0] = chunk[:room], chunk[room:]
            self._out.append(frames.frame(frames.DATA, 0, stream.id, chunk))
            self._send_window -= len(chunk)
            stream.send_window -= len(chunk)
            stream.pending_size -= len(chunk)
        self._blocked.pop(stream.id, None)
        if stream.trailers is not None:
            self._out.append(frames.header_frames(stream.id, stream.trailers, True, self._peer_max_frame))
            self._close_local(stream)

    def _close_local(self, stream: _Stream) -> None:
        del self._streams[stream.id]
        if not stream.recv_done:
            # The answer is complete; the rest of the request is not wanted.
            self._out.append(frames.rst_stream(stream.id, frames.NO_ERROR))

    def _window_opened(self, events: list[Event]) -> None:
        for stream_id in list(self._blocked):
            stream = self._streams.get(stream_id)
            if stream is None:
                self._blocked.pop(stream_id, None)
            else:
                self._flush(stream)
        events.append(WindowOpened())

    # --- input ----------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        if self.closed:
            return []
        buf = self._buf + data if self._buf else data
        pos = 0
        events: list[Event] = []
        if not self._preface_seen:
            if len(buf) < len(frames.PREFACE):
                if not frames.PREFACE.startswith(buf):
                    self._fail(frames.PROTOCOL_ERROR, "not an HTTP/2 connection preface", events)
                else:
                    self._buf = buf
                return events
            if not buf.startswith(frames.PREFACE):
                self._fail(frames.PROTOCOL_ERROR, "not an HTTP/2 connection preface", events)
                return events
            self._preface_seen = True
            pos = len(frames.PREFACE)
        end = len(buf)
        while end - pos >= frames.HEADER_SIZE and not self.closed:
            length, kind, flags, stream_id = frames.parse_header(buf, pos)
            if length > frames.DEFAULT_MAX_FRAME:
                self._fail(frames.FRAME_SIZE_ERROR, f"frame of {length} bytes (the limit is 16384)", events)
                break
            if end - pos - frames.HEADER_SIZE < length:
                break
            start = pos + frames.HEADER_SIZE
            pos = start + length
            self._frame(kind, flags, stream_id, buf[start:pos], events)
        self._buf = buf[pos:] if not self.closed else b""
        return events

    def _fail(self, code: int, reason: str, events: list[Event]) -> None:
        self._out.append(frames.goaway(self._last_stream_id, code, reason.encode()))
        self.closed = True
        events.append(ConnectionFailed(code, reason))

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if self._continuation is not None and kind != frames.CONTINUATION:
            self._fail(frames.PROTOCOL_ERROR, "a header block was interrupted", events)
        elif kind == frames.DATA:
            self._data(flags, stream_id, payload, events)
        elif kind == frames.HEADERS:
            self._headers(flags, stream_id, payload, events)
        elif kind == frames.CONTINUATION:
            self._continued(flags, stream_id, payload, events)
        elif kind == frames.RST_STREAM:
            if stream_id == 0:
                self._fail(frames.PROTOCOL_ERROR, "RST_STREAM on stream 0", events)
                return
            if len(payload) != 4:
                self._fail(frames.FRAME_SIZE_ERROR, "malformed RST_STREAM", events)
                return
            if stream_id > self._last_stream_id:
                self._fail(frames.PROTOCOL_ERROR, f"RST_STREAM on stream {stream_id}, never opened", events)
                return
            stream = self._streams.pop(stream_id, None)
            if stream is not None:
                self._blocked.pop(stream_id, None)
                events.append(StreamReset(stream_id, int.from_bytes(payload, "big")))
        elif kind == frames.SETTINGS:
            self._settings(flags, stream_id, payload, events)
        elif kind == frames.PING:
            if stream_id != 0:
                self._fail(frames.PROTOCOL_ERROR, "PING on a stream", events)
            elif len(payload) != 8:
                self._fail(frames.FRAME_SIZE_ERROR, "malformed PING", events)
            elif not flags & frames.ACK:
                self._out.append(frames.frame(frames.PING, frames.ACK, 0, payload))
        elif kind == frames.WINDOW_UPDATE:
            self._window_update(stream_id, payload, events)
        elif kind == frames.PUSH_PROMISE:
            self._fail(frames.PROTOCOL_ERROR, "a client sent PUSH_PROMISE", events)
        # PRIORITY, GOAWAY (the open streams may still finish) and unknown
        # frame types need nothing from a server.

    def _headers(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id == 0 or stream_id % 2 == 0:
            self._fail(frames.PROTOCOL_ERROR, f"HEADERS on stream {stream_id}", events)
            return
        block = frames.unpad(flags, payload)
        if block is None:
            self._fail(frames.PROTOCOL_ERROR, "HEADERS padding longer than the frame", events)
        elif flags & frames.END_HEADERS:
            self._header_block(flags, stream_id, block, events)
        else:
            self._continuation = (stream_id, flags, bytearray(block))

    def _continued(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if self._continuation is None or self._continuation[0] != stream_id:
            self._fail(frames.PROTOCOL_ERROR, "CONTINUATION without its HEADERS", events)
            return
        _, first_flags, block = self._continuation
        block += payload
        if len(block) > MAX_HEADER_BLOCK:
            self._fail(frames.COMPRESSION_ERROR, f"header block over {MAX_HEADER_BLOCK} bytes", events)
        elif flags & frames.END_HEADERS:
            self._continuation = None
            self._header_block(first_flags, stream_id, bytes(block), events)

    def _header_block(self, flags: int, stream_id: int, block: bytes, events: list[Event]) -> None:
        try:
            # Decoded even for a stream that is refused: HPACK's table is shared.
            headers = self._decoder.decode(block)
        except HeaderBlockError as err:
            self._fail(frames.COMPRESSION_ERROR, f"header block: {err}", events)
            return
        stream = self._streams.get(stream_id)
        if stream is not None:
            # The request's trailers (gRPC clients send none): they end it.
            if flags & frames.END_STREAM and not stream.recv_done:
                self._request_done(stream, events)
            return
        if stream_id <= self._last_stream_id:
            return  # a stream already closed
        self._last_stream_id = stream_id
        if self._goaway_sent or len(self._streams) >= self.max_streams:
            self._out.append(frames.rst_stream(stream_id, frames.REFUSED_STREAM))
            return
        stream = _Stream(stream_id, headers, self._peer_initial_window)
        self._streams[stream_id] = stream
        if flags & frames.END_STREAM:
            self._request_done(stream, events)

    def _request_done(self, stream: _Stream, events: list[Event]) -> None:
        stream.recv_done = True
        if not stream.too_large:
            events.append(Request(stream.id, stream.headers, b"".join(stream.body)))
        stream.body = []

    def _data(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id == 0:
            self._fail(frames.PROTOCOL_ERROR, "DATA on stream 0", events)
            return
        # Every DATA frame counts against the connection's window, whatever
        # its stream's state.
        self._recv_unacked += len(payload)
        if self._recv_unacked >= CONN_RECV_WINDOW // 2:
            self._out.append(frames.window_update(0, self._recv_unacked))
            self._recv_unacked = 0
        data = frames.unpad(flags & frames.PADDED, payload)  # DATA has no priority fields
        if data is None:
            self._fail(frames.PROTOCOL_ERROR, "DATA padding longer than the frame", events)
            return
        stream = self._streams.get(stream_id)
        if stream is None and stream_id > self._last_stream_id:
            self._fail(frames.PROTOCOL_ERROR, f"DATA on stream {stream_id}, never opened", events)
            return
        if stream is None or stream.recv_done:
            return
        if not stream.too_large:
            stream.size += len(data)
            if stream.size > self.max_body:
                stream.too_large = True
                stream.body = []
                events.append(RequestTooLarge(stream_id, stream.headers, stream.size))
            elif data:
                stream.body.append(data)
        if flags & frames.END_STREAM:
            self._request_done(stream, events)
            return
        stream.recv_unacked += len(payload)
        if stream.recv_unacked >= STREAM_RECV_WINDOW // 2:
            self._out.append(frames.window_update(stream_id, stream.recv_unacked))
            stream.recv_unacked = 0

    def _settings(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id != 0:
            self._fail(frames.PROTOCOL_ERROR, "SETTINGS on a stream", events)
            return
        if flags & frames.ACK:
            if payload:
                self._fail(frames.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload", events)
            return
        if len(payload) % 6:
            self._fail(frames.FRAME_SIZE_ERROR, "SETTINGS of a length not a multiple of 6", events)
            return
        opened = False
        for key, value in frames.parse_settings(payload):
            if key == frames.SETTINGS_INITIAL_WINDOW_SIZE:
                if value > frames.MAX_WINDOW:
                    self._fail(frames.FLOW_CONTROL_ERROR, f"initial window {value}", events)
                    return
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
                opened = opened or delta > 0
            elif key == frames.SETTINGS_MAX_FRAME_SIZE:
                if not frames.DEFAULT_MAX_FRAME <= value <= frames.MAX_FRAME_LIMIT:
                    self._fail(frames.PROTOCOL_ERROR, f"max frame size {value}", events)
                    return
                self._peer_max_frame = value
        self._out.append(frames.frame(frames.SETTINGS, frames.ACK, 0))
        if opened:
            self._window_opened(events)

    def _window_update(self, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if len(payload) != 4:
            self._fail(frames.FRAME_SIZE_ERROR, "malformed WINDOW_UPDATE", events)
            return
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if stream_id == 0:
            if increment == 0:
                self._fail(frames.PROTOCOL_ERROR, "connection window update of 0", events)
                return
            if self._send_window + increment > frames.MAX_WINDOW:
                self._fail(frames.FLOW_CONTROL_ERROR, f"connection window update of {increment}", events)
                return
            self._send_window += increment
        else:
            stream = self._streams.get(stream_id)
            if stream is None:
                if stream_id > self._last_stream_id:
                    self._fail(frames.PROTOCOL_ERROR, f"WINDOW_UPDATE on stream {stream_id}, never opened", events)
                return
            if increment == 0 or stream.send_window + increment > frames.MAX_WINDOW:
                code = frames.PROTOCOL_ERROR if increment == 0 else frames.FLOW_CONTROL_ERROR
                self.reset(stream_id, code)
                events.append(StreamReset(stream_id, code))
                return
            stream.send_window += increment
        if self._blocked:
            self._window_opened(events)
