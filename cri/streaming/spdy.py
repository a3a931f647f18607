"""SPDY/3.1 framing, sans I/O: bytes in, events out; events in, bytes out.

Kubernetes still speaks SPDY/3.1 between kubelet and the runtime's streaming
server (remotecommand and portforward), through moby/spdystream.  This module
is our own implementation of the framing layer of SPDY draft 3(.1): frame
(de)serialisation, the zlib header compression with the spec's dictionary,
and the per-stream state machine.  No sockets: ``Connection.receive_data``
takes bytes and returns events, ``Connection.send_*`` return bytes to write.

Frame layout (all integers big-endian)::

    control:  |1| version(15) | type(16) | flags(8) | length(24) | payload
    data:     |0| stream-id(31)          | flags(8) | length(24) | payload

Stream states (per stream id; a table below, ``_TRANSITIONS``)::

                  SYN_STREAM sent/received
        IDLE ------------------------------> OPEN
                                              | FIN sent          | FIN received
                                              v                   v
                                   HALF_CLOSED_LOCAL     HALF_CLOSED_REMOTE
                                              | FIN received      | FIN sent
                                              +------> CLOSED <---+
        any state --RST_STREAM sent/received--> CLOSED

Facts that shaped this module:

* Header blocks of one direction share ONE zlib stream for the whole session,
  primed with the dictionary of draft 3 section 2.6.10.1 and flushed with
  Z_SYNC_FLUSH after each block; so decompression must happen in frame order
  and a corrupt block poisons the session (a session error, GOAWAY).
* Header names must be lowercase (spdystream's framer rejects others); a value
  may hold several values separated by NUL.
* Flow control (3.1 WINDOW_UPDATE) is tracked but not enforced on sending:
  spdystream, the only peer that matters, never sends WINDOW_UPDATE, so a
  sender that waited for window would stall after 64 KiB.  We do send
  WINDOW_UPDATE for what we consume, as the spec asks; spdystream ignores it.
* Stream-level faults (DATA on an unknown or closed stream) answer with
  RST_STREAM and the session goes on; session-level faults (bad frame
  layout, bad compression, stream ids going backwards) raise ``ProtocolError``
  after queueing GOAWAY(PROTOCOL_ERROR): the caller writes it and closes.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
MAX_FRAME_PAYLOAD = (1 << 24) - 1
MAX_STREAM_ID = (1 << 31) - 1
DEFAULT_WINDOW = 64 * 1024
# Decompressed header blocks larger than this are refused (zip bombs).
MAX_HEADER_BLOCK = 256 * 1024

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
FLAG_SETTINGS_CLEAR = 0x01


class FrameType(enum.IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(enum.IntEnum):
    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    FRAME_TOO_LARGE = 11


class GoAwayStatus(enum.IntEnum):
    OK = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


class SettingId(enum.IntEnum):
    UPLOAD_BANDWIDTH = 1
    DOWNLOAD_BANDWIDTH = 2
    ROUND_TRIP_TIME = 3
    MAX_CONCURRENT_STREAMS = 4
    CURRENT_CWND = 5
    DOWNLOAD_RETRANS_RATE = 6
    INITIAL_WINDOW_SIZE = 7
    CLIENT_CERTIFICATE_VECTOR_SIZE = 8


class ProtocolError(Exception):
    """The peer broke the session framing; the session must end.

    ``status`` is the GOAWAY status to report (already queued on the
    connection that raised it)."""

    def __init__(self, message: str, status: GoAwayStatus = GoAwayStatus.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# --- the header compression dictionary --------------------------------------
# SPDY draft 3, section 2.6.10.1: a sequence of length-prefixed (4-byte
# big-endian) strings, then a run of bare text (status codes, dates, common
# values).  Written here as data; the bytes are pinned by a digest in the tests.
_DICT_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding "
    "accept-language accept-ranges age allow authorization cache-control "
    "connection content-base content-encoding content-language content-length "
    "content-location content-md5 content-range content-type date etag expect "
    "expires from host if-match if-modified-since if-none-match if-range "
    "if-unmodified-since last-modified location max-forwards pragma "
    "proxy-authenticate proxy-authorization range referer retry-after server te "
    "trailer transfer-encoding upgrade user-agent vary via warning "
    "www-authenticate method get status"
).split() + ["200 OK"] + "version HTTP/1.1 url public set-cookie keep-alive origin".split()
_DICT_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414"
    "415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found"
    "500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,"
    "application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
HEADER_DICTIONARY = b"".join(
    struct.pack(">I", len(w)) + w.encode("ascii") for w in _DICT_WORDS
) + _DICT_TAIL.encode("ascii")

Headers = tuple[tuple[str, str], ...]


def header_value(headers: Headers, name: str) -> str | None:
    """The first value of header ``name`` (lowercase), or None."""
    for key, value in headers:
        if key == name:
            return value.split("\0", 1)[0]
    return None


# --- events -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SynStream:
    stream_id: int
    headers: Headers
    associated_id: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True, slots=True)
class SynReply:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True, slots=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True, slots=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...]  # (id, flags, value)
    clear: bool = False


@dataclass(frozen=True, slots=True)
class Ping:
    ping_id: int


@dataclass(frozen=True, slots=True)
class GoAway:
    last_good_stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """Not a frame: the stream reached CLOSED (both FINs, or a reset)."""
    stream_id: int


Frame = SynStream | SynReply | HeadersFrame | RstStream | Data | Settings | Ping | GoAway | WindowUpdate
Event = Frame | StreamEnded


# --- header blocks ------------------------------------------------------------

class HeaderCompressor:
    """One direction's zlib stream for header blocks."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8,
                                   zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        raw = [struct.pack(">I", len(headers))]
        for name, value in headers:
            if name != name.lower() or not name:
                raise ValueError(f"SPDY header name {name!r} must be non-empty lowercase")
            n, v = name.encode("utf-8"), value.encode("utf-8")
            raw += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
        return self._z.compress(b"".join(raw)) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """The other direction's zlib stream; errors are session errors."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(15, HEADER_DICTIONARY)

    def decompress(self, block: bytes) -> Headers:
        try:
            raw = self._z.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as err:
            raise ProtocolError(f"header block does not decompress: {err}") from err
        if self._z.unconsumed_tail:
            raise ProtocolError(f"header block larger than {MAX_HEADER_BLOCK} bytes")
        return parse_header_block(raw)


def parse_header_block(raw: bytes) -> Headers:
    """Decompressed header block -> (name, value) pairs, validated."""
    def take(pos: int, n: int) -> tuple[bytes, int]:
        if pos + n > len(raw):
            raise ProtocolError("header block truncated")
        return raw[pos:pos + n], pos + n

    count_b, pos = take(0, 4)
    (count,) = struct.unpack(">I", count_b)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for _ in range(count):
        ln, pos = take(pos, 4)
        name_b, pos = take(pos, struct.unpack(">I", ln)[0])
        lv, pos = take(pos, 4)
        value_b, pos = take(pos, struct.unpack(">I", lv)[0])
        try:
            name, value = name_b.decode("utf-8"), value_b.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ProtocolError("header block is not UTF-8") from err
        if not name or name != name.lower():
            raise ProtocolError(f"header name {name!r} is empty or not lowercase")
        if name in seen:
            raise ProtocolError(f"header {name!r} appears twice")
        seen.add(name)
        out.append((name, value))
    if pos != len(raw):
        raise ProtocolError("trailing bytes after the header block")
    return tuple(out)


# --- frame codec ----------------------------------------------------------------

def _control(ftype: FrameType, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_PAYLOAD:
        raise ValueError("SPDY frame payload over 16 MiB")
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


def _check_id(stream_id: int, *, zero_ok: bool = False) -> None:
    if not (0 if zero_ok else 1) <= stream_id <= MAX_STREAM_ID:
        raise ValueError(f"SPDY stream id {stream_id} out of range")


def encode_frame(frame: Frame, compressor: HeaderCompressor) -> bytes:
    """Serialise one frame (header blocks through ``compressor``, in order)."""
    if isinstance(frame, Data):
        _check_id(frame.stream_id)
        if len(frame.data) > MAX_FRAME_PAYLOAD:
            raise ValueError("SPDY DATA payload over 16 MiB")
        return struct.pack(">II", frame.stream_id, ((FLAG_FIN if frame.fin else 0) << 24) | len(frame.data)) + frame.data
    if isinstance(frame, SynStream):
        _check_id(frame.stream_id)
        _check_id(frame.associated_id, zero_ok=True)
        flags = (FLAG_FIN if frame.fin else 0) | (FLAG_UNIDIRECTIONAL if frame.unidirectional else 0)
        payload = struct.pack(">IIBB", frame.stream_id, frame.associated_id, (frame.priority & 7) << 5, 0)
        return _control(FrameType.SYN_STREAM, flags, payload + compressor.compress(frame.headers))
    if isinstance(frame, SynReply):
        _check_id(frame.stream_id)
        return _control(FrameType.SYN_REPLY, FLAG_FIN if frame.fin else 0,
                        struct.pack(">I", frame.stream_id) + compressor.compress(frame.headers))
    if isinstance(frame, HeadersFrame):
        _check_id(frame.stream_id)
        return _control(FrameType.HEADERS, FLAG_FIN if frame.fin else 0,
                        struct.pack(">I", frame.stream_id) + compressor.compress(frame.headers))
    if isinstance(frame, RstStream):
        _check_id(frame.stream_id)
        return _control(FrameType.RST_STREAM, 0, struct.pack(">II", frame.stream_id, frame.status))
    if isinstance(frame, Settings):
        body = b"".join(struct.pack(">II", (f << 24) | i, v) for i, f, v in frame.entries)
        return _control(FrameType.SETTINGS, FLAG_SETTINGS_CLEAR if frame.clear else 0,
                        struct.pack(">I", len(frame.entries)) + body)
    if isinstance(frame, Ping):
        return _control(FrameType.PING, 0, struct.pack(">I", frame.ping_id))
    if isinstance(frame, GoAway):
        _check_id(frame.last_good_stream_id, zero_ok=True)
        return _control(FrameType.GOAWAY, 0, struct.pack(">II", frame.last_good_stream_id, frame.status))
    if isinstance(frame, WindowUpdate):
        _check_id(frame.stream_id, zero_ok=True)
        if not 1 <= frame.delta <= MAX_STREAM_ID:
            raise ValueError(f"WINDOW_UPDATE delta {frame.delta} out of range")
        return _control(FrameType.WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id, frame.delta))
    raise TypeError(f"not a SPDY frame: {frame!r}")


# Minimum payload length per control type (exact where fixed).
_FIXED_LEN = {FrameType.RST_STREAM: 8, FrameType.PING: 4, FrameType.GOAWAY: 8, FrameType.WINDOW_UPDATE: 8}
_MIN_LEN = {FrameType.SYN_STREAM: 10, FrameType.SYN_REPLY: 4, FrameType.HEADERS: 4, FrameType.SETTINGS: 4}


class FrameReader:
    """Bytes -> frames, with one direction's header decompression."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._decompressor = HeaderDecompressor()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            word, flags_len = struct.unpack_from(">II", self._buf)
            length = flags_len & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            flags = flags_len >> 24
            if word & 0x80000000:
                frame = self._control(word, flags, payload)
                if frame is not None:
                    frames.append(frame)
            else:
                if word == 0:
                    raise ProtocolError("DATA frame on stream 0")
                frames.append(Data(word, payload, bool(flags & FLAG_FIN)))
        return frames

    def _control(self, word: int, flags: int, payload: bytes) -> Frame | None:
        version = (word >> 16) & 0x7FFF
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version}, only {VERSION} is spoken")
        try:
            ftype = FrameType(word & 0xFFFF)
        except ValueError:
            return None  # the spec says: ignore unknown control frame types
        if ftype in _FIXED_LEN and len(payload) != _FIXED_LEN[ftype]:
            raise ProtocolError(f"{ftype.name} frame of length {len(payload)}, want {_FIXED_LEN[ftype]}")
        if len(payload) < _MIN_LEN.get(ftype, 0):
            raise ProtocolError(f"{ftype.name} frame of length {len(payload)} is too short")
        if ftype is FrameType.SYN_STREAM:
            sid, assoc, prio = struct.unpack_from(">IIB", payload)
            return SynStream(sid & MAX_STREAM_ID, self._decompressor.decompress(payload[10:]),
                             assoc & MAX_STREAM_ID, prio >> 5, bool(flags & FLAG_FIN),
                             bool(flags & FLAG_UNIDIRECTIONAL))
        if ftype in (FrameType.SYN_REPLY, FrameType.HEADERS):
            (sid,) = struct.unpack_from(">I", payload)
            headers = self._decompressor.decompress(payload[4:])
            cls = SynReply if ftype is FrameType.SYN_REPLY else HeadersFrame
            return cls(sid & MAX_STREAM_ID, headers, bool(flags & FLAG_FIN))
        if ftype is FrameType.RST_STREAM:
            sid, status = struct.unpack(">II", payload)
            return RstStream(sid & MAX_STREAM_ID, status)
        if ftype is FrameType.SETTINGS:
            (count,) = struct.unpack_from(">I", payload)
            if len(payload) != 4 + 8 * count:
                raise ProtocolError(f"SETTINGS frame says {count} entries in {len(payload)} bytes")
            entries = []
            for k in range(count):
                fid, value = struct.unpack_from(">II", payload, 4 + 8 * k)
                entries.append((fid & 0xFFFFFF, fid >> 24, value))
            return Settings(tuple(entries), bool(flags & FLAG_SETTINGS_CLEAR))
        if ftype is FrameType.PING:
            return Ping(struct.unpack(">I", payload)[0])
        if ftype is FrameType.GOAWAY:
            last, status = struct.unpack(">II", payload)
            return GoAway(last & MAX_STREAM_ID, status)
        sid, delta = struct.unpack(">II", payload)
        delta &= MAX_STREAM_ID
        if delta == 0:
            raise ProtocolError("WINDOW_UPDATE with a zero delta")
        return WindowUpdate(sid & MAX_STREAM_ID, delta)


# --- the session --------------------------------------------------------------

class StreamState(enum.Enum):
    OPEN = "open"
    HALF_CLOSED_LOCAL = "half-closed (local)"    # we sent FIN
    HALF_CLOSED_REMOTE = "half-closed (remote)"  # peer sent FIN
    CLOSED = "closed"


# (state, who sent FIN) -> next state
_TRANSITIONS: dict[tuple[StreamState, str], StreamState] = {
    (StreamState.OPEN, "local"): StreamState.HALF_CLOSED_LOCAL,
    (StreamState.OPEN, "remote"): StreamState.HALF_CLOSED_REMOTE,
    (StreamState.HALF_CLOSED_LOCAL, "remote"): StreamState.CLOSED,
    (StreamState.HALF_CLOSED_REMOTE, "local"): StreamState.CLOSED,
}
_CAN_SEND = {StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE}
_CAN_RECEIVE = {StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL}


class StreamStateError(Exception):
    """A local call that the stream's state forbids (our bug, not the peer's)."""


@dataclass(slots=True)
class _Stream:
    state: StreamState
    send_window: int
    recv_window: int
    unacked: int = 0


@dataclass(slots=True)
class Connection:
    """One SPDY session, as ``client`` (odd stream ids) or server (even)."""

    client: bool
    initial_window: int = DEFAULT_WINDOW
    streams: dict[int, _Stream] = field(default_factory=dict)
    _reader: FrameReader = field(default_factory=FrameReader)
    _compressor: HeaderCompressor = field(default_factory=HeaderCompressor)
    _out: bytearray = field(default_factory=bytearray)
    _last_remote_id: int = 0
    _next_local_id: int = 0
    _peer_window: int = DEFAULT_WINDOW
    goaway_received: bool = False
    goaway_sent: bool = False

    def __post_init__(self) -> None:
        self._next_local_id = 1 if self.client else 2

    # -- outbound bytes ------------------------------------------------------
    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def _emit(self, frame: Frame) -> None:
        self._out += encode_frame(frame, self._compressor)

    # -- receiving -------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; return what happened.

        Raises ProtocolError for a session error, with GOAWAY queued."""
        try:
            frames = self._reader.feed(data)
            events: list[Event] = []
            for frame in frames:
                events += self._receive(frame)
            return events
        except ProtocolError as err:
            self._goaway(err.status)
            raise

    def _goaway(self, status: GoAwayStatus) -> None:
        if not self.goaway_sent:
            self.goaway_sent = True
            self._emit(GoAway(self._last_remote_id, status))

    def _reset(self, stream_id: int, status: RstStatus) -> None:
        self._emit(RstStream(stream_id, status))
        st = self.streams.get(stream_id)
        if st is not None:
            st.state = StreamState.CLOSED

    def _receive(self, frame: Frame) -> list[Event]:
        if isinstance(frame, SynStream):
            sid = frame.stream_id
            if sid % 2 == (1 if self.client else 0) or sid <= self._last_remote_id:
                raise ProtocolError(f"SYN_STREAM with stream id {sid} (last was {self._last_remote_id})")
            self._last_remote_id = sid
            if self.goaway_sent:
                self._emit(RstStream(sid, RstStatus.REFUSED_STREAM))
                return []
            state = StreamState.OPEN
            if frame.unidirectional:
                state = StreamState.HALF_CLOSED_LOCAL
            opened = _Stream(state, self._peer_window, self.initial_window)
            self.streams[sid] = opened
            out: list[Event] = [frame]
            if frame.fin:
                out += self._fin(sid, opened, "remote")
            return out
        if isinstance(frame, (SynReply, HeadersFrame, Data)):
            st = self.streams.get(frame.stream_id)
            if st is None:
                self._emit(RstStream(frame.stream_id, RstStatus.INVALID_STREAM))
                return []
            if st.state not in _CAN_RECEIVE:
                self._reset(frame.stream_id, RstStatus.STREAM_ALREADY_CLOSED)
                return [StreamEnded(frame.stream_id)]
            if isinstance(frame, Data):
                # Tracked, not enforced: spdystream ignores our window too.
                st.recv_window -= len(frame.data)
            out = [frame]
            if frame.fin:
                out += self._fin(frame.stream_id, st, "remote")
            return out
        if isinstance(frame, RstStream):
            st = self.streams.pop(frame.stream_id, None)
            if st is None:
                return [frame]
            return [frame, StreamEnded(frame.stream_id)]
        if isinstance(frame, Settings):
            for sid_, _flags, value in frame.entries:
                if sid_ == SettingId.INITIAL_WINDOW_SIZE:
                    self._peer_window = value
            return [frame]
        if isinstance(frame, Ping):
            # An odd id is the client's, even the server's: echo the peer's.
            if frame.ping_id % 2 == (0 if self.client else 1):
                self._emit(frame)
            return [frame]
        if isinstance(frame, GoAway):
            self.goaway_received = True
            return [frame]
        if isinstance(frame, WindowUpdate):
            st = self.streams.get(frame.stream_id)
            if st is not None:
                st.send_window += frame.delta
            return [frame]
        raise AssertionError(f"unhandled frame {frame!r}")

    def _fin(self, stream_id: int, st: _Stream, side: str) -> list[Event]:
        nxt = _TRANSITIONS.get((st.state, side))
        if nxt is None:
            raise StreamStateError(f"stream {stream_id}: FIN from {side} in state {st.state.value}")
        st.state = nxt
        if nxt is StreamState.CLOSED:
            del self.streams[stream_id]
            return [StreamEnded(stream_id)]
        return []

    # -- sending ---------------------------------------------------------------
    def open_stream(self, headers: Headers, *, fin: bool = False) -> int:
        """SYN_STREAM a new stream of ours; returns its id."""
        if self.goaway_received:
            raise StreamStateError("the peer sent GOAWAY: no new streams")
        sid = self._next_local_id
        self._next_local_id += 2
        self.streams[sid] = _Stream(StreamState.OPEN, self._peer_window, self.initial_window)
        self._emit(SynStream(sid, headers, fin=fin))
        if fin:
            self._fin(sid, self.streams[sid], "local")
        return sid

    def reply(self, stream_id: int, headers: Headers = (), *, fin: bool = False) -> None:
        st = self._sendable(stream_id)
        self._emit(SynReply(stream_id, headers, fin))
        if fin:
            self._fin(stream_id, st, "local")

    def send_data(self, stream_id: int, data: bytes, *, fin: bool = False) -> list[StreamEnded]:
        """Queue DATA, in frames of at most 16 KiB so that streams interleave."""
        st = self._sendable(stream_id)
        chunk = 16 * 1024
        for off in range(0, len(data), chunk):
            last = off + chunk >= len(data)
            self._emit(Data(stream_id, data[off:off + chunk], fin and last))
        if not data and fin:
            self._emit(Data(stream_id, b"", True))
        st.send_window -= len(data)
        if fin:
            return [StreamEnded(stream_id)] if self._fin(stream_id, st, "local") else []
        return []

    def reset_stream(self, stream_id: int, status: RstStatus = RstStatus.CANCEL) -> None:
        self._emit(RstStream(stream_id, status))
        self.streams.pop(stream_id, None)

    def acknowledge(self, stream_id: int, nbytes: int) -> None:
        """The application consumed ``nbytes`` of the stream: reopen the window
        (WINDOW_UPDATE once half of it is used, to keep frames few)."""
        st = self.streams.get(stream_id)
        if st is None or nbytes <= 0:
            return
        st.unacked += nbytes
        if st.unacked >= self.initial_window // 2:
            self._emit(WindowUpdate(stream_id, st.unacked))
            st.recv_window += st.unacked
            st.unacked = 0

    def ping(self, ping_id: int) -> None:
        self._emit(Ping(ping_id))

    def goaway(self, status: GoAwayStatus = GoAwayStatus.OK) -> None:
        self._goaway(status)

    def _sendable(self, stream_id: int) -> _Stream:
        st = self.streams.get(stream_id)
        if st is None:
            raise StreamStateError(f"stream {stream_id} is not open")
        if st.state not in _CAN_SEND:
            raise StreamStateError(f"stream {stream_id}: cannot send in state {st.state.value}")
        return st
