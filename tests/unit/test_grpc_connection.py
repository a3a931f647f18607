"""cri/grpc_server/connection.py: the sans-I/O server side of an HTTP/2 connection,
driven by the bytes a gRPC client would send (header blocks from a real HPACK
encoder, Huffman coded) and judged by the frames it answers with."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Sequence

import hpack
import pytest
from dockyard.cri.grpc_server import connection, frames, messages
from dockyard.cri.grpc_server.connection import (
    Connection,
    ConnectionFailed,
    Event,
    Request,
    RequestTooLarge,
    StreamReset,
    WindowOpened,
)

REQUEST_FIELDS = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/runtime.v1.RuntimeService/Version"),
    (":authority", "localhost"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
    ("grpc-timeout", "2S"),
    ("user-agent", "grpc-go/1.64.0"),
]
REQUEST_HEADERS = dict(REQUEST_FIELDS)
BODY = messages.frame_message(b"\x0a\x04v1.0")
RESPONSE_FIELDS = [(":status", "200"), ("content-type", "application/grpc")]
PING_DATA = b"\x01\x02\x03\x04\x05\x06\x07\x08"


@dataclasses.dataclass(frozen=True)
class Frame:
    """One frame the server sent; ``fields`` is the decoded header block on a HEADERS
    frame (joined with its CONTINUATIONs), None elsewhere."""
    kind: int
    flags: int
    stream_id: int
    payload: bytes
    fields: list[tuple[str, str]] | None = None


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return frames.frame(kind, flags, stream_id, payload)


def data(stream_id: int, payload: bytes, flags: int = 0) -> bytes:
    return frames.frame(frames.DATA, flags, stream_id, payload)


def ping(payload: bytes = PING_DATA, flags: int = 0) -> bytes:
    return frames.frame(frames.PING, flags, 0, payload)


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


class Peer:
    """The client's end of one connection: an HPACK encoder for its header blocks, an
    HPACK decoder for the server's, and the server ``conn`` under test."""

    def __init__(self, *, max_body: int = 1 << 20, max_streams: int = 100) -> None:
        self.conn = Connection(max_body=max_body, max_streams=max_streams)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()

    def receive(self, *chunks: bytes) -> list[Event]:
        return self.conn.receive(b"".join(chunks))

    def block(self, fields: Sequence[tuple[str, str]] = REQUEST_FIELDS) -> bytes:
        """A header block from the client's encoder (its dynamic table changes: send it)."""
        out: bytes = self.encoder.encode(list(fields))
        return out

    def headers(self, stream_id: int, *, end_stream: bool = False,
                fields: Sequence[tuple[str, str]] = REQUEST_FIELDS) -> bytes:
        flags = frames.END_HEADERS | (frames.END_STREAM if end_stream else 0)
        return frames.frame(frames.HEADERS, flags, stream_id, self.block(fields))

    def request(self, stream_id: int, body: bytes = BODY) -> list[Event]:
        """A whole unary request: HEADERS, then the body in one DATA with END_STREAM."""
        return self.receive(self.headers(stream_id), data(stream_id, body, frames.END_STREAM))

    def read(self) -> list[Frame]:
        """Split what the server has to send into frames, decoding header blocks."""
        out = self.conn.data_to_send()
        parsed: list[Frame] = []
        pos = 0
        while pos < len(out):
            length, kind, flags, stream_id = frames.parse_header(out, pos)
            start = pos + frames.HEADER_SIZE
            parsed.append(Frame(kind, flags, stream_id, out[start:start + length]))
            pos = start + length
        assert pos == len(out), "the server's output ends inside a frame"
        result: list[Frame] = []
        block = bytearray()
        first = -1
        for item in parsed:
            if item.kind in (frames.HEADERS, frames.CONTINUATION):
                if item.kind == frames.HEADERS:
                    assert first == -1, "HEADERS inside a header block"
                    first, block = len(result), bytearray()
                else:
                    assert first != -1 and result[first].stream_id == item.stream_id
                block += item.payload
                result.append(item)
                if item.flags & frames.END_HEADERS:
                    fields = [(n.decode(), v.decode()) for n, v in self.decoder.decode(bytes(block), raw=True)]
                    result[first] = dataclasses.replace(result[first], fields=fields)
                    first = -1
            else:
                assert first == -1, "a frame inside a header block"
                result.append(item)
        assert first == -1, "the server's output ends inside a header block"
        return result


def established(*, max_body: int = 1 << 20, max_streams: int = 100,
                settings: dict[int, int] | None = None) -> Peer:
    """A peer past the preface and the SETTINGS exchange, the server's output read."""
    peer = Peer(max_body=max_body, max_streams=max_streams)
    events = peer.receive(frames.PREFACE, frames.settings(settings or {}))
    assert events in ([], [WindowOpened()])  # the latter when the settings raise the initial window
    peer.read()
    return peer


def kinds(out: list[Frame]) -> list[int]:
    return [f.kind for f in out]


def settings_ack() -> Frame:
    return Frame(frames.SETTINGS, frames.ACK, 0, b"")


def window_update(stream_id: int, increment: int) -> Frame:
    return Frame(frames.WINDOW_UPDATE, 0, stream_id, u32(increment))


def rst(stream_id: int, code: int) -> Frame:
    return Frame(frames.RST_STREAM, 0, stream_id, u32(code))


def goaway_of(out: list[Frame]) -> tuple[int, int]:
    """(last stream id, code) of the single GOAWAY in ``out``, which it ends."""
    assert out and out[-1].kind == frames.GOAWAY
    assert kinds(out).count(frames.GOAWAY) == 1
    last, code = struct.unpack_from(">II", out[-1].payload)
    return last, code


def data_frames(out: list[Frame], stream_id: int) -> list[bytes]:
    return [f.payload for f in out if f.kind == frames.DATA and f.stream_id == stream_id]


# --- the connection's start and control frames ---------------------------------------

def test_server_speaks_first() -> None:
    """The server's preface is SETTINGS (MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE),
    then a connection WINDOW_UPDATE raising 65535 to CONN_RECV_WINDOW (RFC 9113 3.4, 6.9.2)."""
    peer = Peer(max_streams=7)
    out = peer.read()
    assert kinds(out) == [frames.SETTINGS, frames.WINDOW_UPDATE]
    assert (out[0].flags, out[0].stream_id) == (0, 0)
    assert frames.parse_settings(out[0].payload) == [
        (frames.SETTINGS_MAX_CONCURRENT_STREAMS, 7),
        (frames.SETTINGS_INITIAL_WINDOW_SIZE, connection.STREAM_RECV_WINDOW),
    ]
    assert out[1] == window_update(0, connection.CONN_RECV_WINDOW - frames.DEFAULT_WINDOW)
    assert peer.read() == []


@pytest.mark.parametrize("sent, answer", [
    pytest.param(frames.settings({}), [settings_ack()], id="empty-settings-acked"),
    pytest.param(frames.settings({frames.SETTINGS_HEADER_TABLE_SIZE: 0, frames.SETTINGS_ENABLE_PUSH: 0,
                                  frames.SETTINGS_MAX_HEADER_LIST_SIZE: 8192}),
                 [settings_ack()], id="settings-acked"),
    pytest.param(frames.settings({0x99: 12345}), [settings_ack()], id="unknown-setting-ignored-and-acked"),
    pytest.param(frame(frames.SETTINGS, frames.ACK, 0), [], id="settings-ack-not-answered"),
    pytest.param(ping(), [Frame(frames.PING, frames.ACK, 0, PING_DATA)], id="ping-echoed"),
    pytest.param(ping(b"\xff" * 8), [Frame(frames.PING, frames.ACK, 0, b"\xff" * 8)], id="ping-echoed-other-bytes"),
    pytest.param(ping(flags=frames.ACK), [], id="ping-ack-not-answered"),
    pytest.param(frame(frames.PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10"), [], id="priority-ignored"),
    pytest.param(frame(0xF0, 0xFF, 0, b"whatever"), [], id="unknown-frame-type-ignored"),
    pytest.param(frame(frames.GOAWAY, 0, 0, u32(0) + u32(0)), [], id="client-goaway-ignored"),
    pytest.param(frames.window_update(0, 1000), [], id="window-update-nothing-waiting"),
])
def test_control_frames(sent: bytes, answer: list[Frame]) -> None:
    """SETTINGS is acknowledged, PING echoed with ACK and the same 8 bytes, ACKs and
    frames a server has no use for are not answered (RFC 9113 6.5.3, 6.7, 5.5)."""
    peer = established()
    assert peer.receive(sent) == []
    assert peer.read() == answer
    assert not peer.conn.closed


# --- the preface -------------------------------------------------------------------------

@pytest.mark.parametrize("split", [1, 10, len(frames.PREFACE) - 1, len(frames.PREFACE), len(frames.PREFACE) + 4])
def test_preface_split_across_receives(split: int) -> None:
    """The client preface may arrive in pieces; nothing happens until it is whole."""
    peer = Peer()
    peer.read()
    stream = frames.PREFACE + frames.settings({})
    assert peer.receive(stream[:split]) == []
    assert peer.read() == []
    assert peer.receive(stream[split:]) == []
    assert peer.read() == [settings_ack()]
    assert peer.request(1) == [Request(1, REQUEST_HEADERS, BODY)]


@pytest.mark.parametrize("chunks", [
    pytest.param([b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"], id="http1-request"),
    pytest.param([b"PRI * HTTP/1.1"], id="short-wrong-start"),
    pytest.param([b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[:10], b"X"], id="wrong-byte-in-second-piece"),
    pytest.param([b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"], id="full-length-wrong"),
    pytest.param([b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"], id="tls-client-hello"),
])
def test_wrong_preface(chunks: list[bytes]) -> None:
    """Anything but the connection preface is a PROTOCOL_ERROR: GOAWAY and closed (RFC 9113 3.4)."""
    peer = Peer()
    peer.read()
    events: list[Event] = []
    for chunk in chunks:
        events += peer.receive(chunk)
    assert len(events) == 1 and isinstance(events[0], ConnectionFailed)
    assert events[0].code == frames.PROTOCOL_ERROR
    assert goaway_of(peer.read()) == (0, frames.PROTOCOL_ERROR)
    assert peer.conn.closed
    assert peer.receive(frames.PREFACE, frames.settings({})) == []
    assert peer.read() == []


def test_bytes_one_at_a_time() -> None:
    """Frames are reassembled whatever the read sizes: a request fed byte by byte is one Request."""
    peer = Peer()
    peer.read()
    stream = frames.PREFACE + frames.settings({}) + peer.headers(1) + data(1, BODY[:3]) + ping() \
        + data(1, BODY[3:], frames.END_STREAM)
    events: list[Event] = []
    for i in range(len(stream)):
        events += peer.conn.receive(stream[i:i + 1])
    assert events == [Request(1, REQUEST_HEADERS, BODY)]
    assert peer.read() == [settings_ack(), Frame(frames.PING, frames.ACK, 0, PING_DATA)]


# --- requests ------------------------------------------------------------------------------

Build = Callable[[bytes], bytes]  # the client's header block -> the bytes it sends for stream 1


def _continuations(block: bytes) -> bytes:
    third = len(block) // 3
    return (frame(frames.HEADERS, 0, 1, block[:third])
            + frame(frames.CONTINUATION, 0, 1, block[third:2 * third])
            + frame(frames.CONTINUATION, frames.END_HEADERS, 1, block[2 * third:])
            + data(1, BODY, frames.END_STREAM))


REQUEST_SHAPES: list[tuple[str, Build, bytes]] = [
    ("headers-then-data", lambda b: frame(frames.HEADERS, frames.END_HEADERS, 1, b) + data(1, BODY, frames.END_STREAM),
     BODY),
    ("headers-with-end-stream-no-body", lambda b: frame(frames.HEADERS, frames.END_HEADERS | frames.END_STREAM, 1, b),
     b""),
    ("headers-and-continuations", _continuations, BODY),
    ("end-stream-on-headers-before-continuation",
     lambda b: frame(frames.HEADERS, frames.END_STREAM, 1, b[:5]) + frame(frames.CONTINUATION, frames.END_HEADERS, 1, b[5:]),
     b""),
    ("empty-continuation", lambda b: frame(frames.HEADERS, 0, 1, b) + frame(frames.CONTINUATION, frames.END_HEADERS, 1)
     + data(1, BODY, frames.END_STREAM), BODY),
    ("padded-headers", lambda b: frame(frames.HEADERS, frames.END_HEADERS | frames.PADDED, 1, b"\x07" + b + b"\x00" * 7)
     + data(1, BODY, frames.END_STREAM), BODY),
    ("priority-headers", lambda b: frame(frames.HEADERS, frames.END_HEADERS | frames.PRIORITY_FLAG, 1,
                                         b"\x00\x00\x00\x00\xff" + b) + data(1, BODY, frames.END_STREAM), BODY),
    ("padded-priority-headers-and-continuation",
     lambda b: frame(frames.HEADERS, frames.PADDED | frames.PRIORITY_FLAG, 1, b"\x02\x00\x00\x00\x00\xff" + b[:4] + b"\0\0")
     + frame(frames.CONTINUATION, frames.END_HEADERS, 1, b[4:]) + data(1, BODY, frames.END_STREAM), BODY),
    ("padded-data", lambda b: frame(frames.HEADERS, frames.END_HEADERS, 1, b)
     + data(1, b"\x03" + BODY + b"\x00\x00\x00", frames.PADDED | frames.END_STREAM), BODY),
    ("padded-data-zero-padding", lambda b: frame(frames.HEADERS, frames.END_HEADERS, 1, b)
     + data(1, b"\x00" + BODY, frames.PADDED | frames.END_STREAM), BODY),
    ("body-over-several-data-frames", lambda b: frame(frames.HEADERS, frames.END_HEADERS, 1, b)
     + data(1, BODY[:2]) + data(1, BODY[2:6]) + data(1, b"") + data(1, BODY[6:]) + data(1, b"", frames.END_STREAM), BODY),
    ("request-trailers-end-it", lambda b: frame(frames.HEADERS, frames.END_HEADERS, 1, b) + data(1, BODY)
     + frame(frames.HEADERS, frames.END_HEADERS | frames.END_STREAM, 1, frames.literal(b"x-t", b"1")), BODY),
    ("data-with-undefined-flag-0x20", lambda b: frame(frames.HEADERS, frames.END_HEADERS, 1, b)
     + data(1, BODY, frames.END_STREAM | 0x20), BODY),
    ("interleaved-ping-and-window-update", lambda b: frame(frames.HEADERS, frames.END_HEADERS, 1, b) + ping(flags=frames.ACK)
     + data(1, BODY[:4]) + frames.window_update(0, 10) + data(1, BODY[4:], frames.END_STREAM), BODY),
]


@pytest.mark.parametrize("build, body", [pytest.param(b, body, id=name) for name, b, body in REQUEST_SHAPES])
def test_request(build: Build, body: bytes) -> None:
    """A request's HEADERS (and CONTINUATIONs, padding and priority fields stripped) and
    DATA up to END_STREAM (padding stripped, undefined flags ignored) make one Request:
    headers by lower-case name, as str, and the body's bytes (RFC 9113 6.1, 6.2, 6.10, 4.1)."""
    peer = established()
    events = peer.receive(build(peer.block()))
    assert events == [Request(1, REQUEST_HEADERS, body)]
    assert all(isinstance(k, str) and isinstance(v, str) and k == k.lower() for k, v in events[0].headers.items())  # type: ignore[union-attr]
    assert peer.conn.is_open(1)
    assert not peer.conn.closed


def test_requests_interleaved() -> None:
    """Streams are independent: bodies interleaved on two streams make two Requests, in
    the order they complete, and the HPACK table carries over between their blocks."""
    peer = established()
    other = [*REQUEST_FIELDS[:2], (":path", "/runtime.v1.RuntimeService/Status"), *REQUEST_FIELDS[3:]]
    events = peer.receive(peer.headers(1), peer.headers(3, fields=other), data(3, BODY[:4]), data(1, BODY[:4]),
                          data(3, BODY[4:], frames.END_STREAM), data(1, BODY[4:], frames.END_STREAM))
    assert events == [Request(3, dict(other), BODY), Request(1, REQUEST_HEADERS, BODY)]
    assert peer.conn.open_streams == 2


# --- responses ---------------------------------------------------------------------------

@pytest.mark.parametrize("code, message, trailers", [
    pytest.param(messages.OK, "", [("grpc-status", "0")], id="ok"),
    pytest.param(messages.UNKNOWN, "handler failed: 50%", [("grpc-status", "2"), ("grpc-message", "handler failed: 50%25")],
                 id="error-after-data"),
])
def test_response(code: int, message: str, trailers: list[tuple[str, str]]) -> None:
    """A response is HEADERS (:status 200, content-type), DATA holding the length-prefixed
    message, then trailers HEADERS with END_STREAM and grpc-status (PROTOCOL-HTTP2.md)."""
    peer = established()
    peer.request(1)
    peer.conn.send_message(1, b"hello")
    peer.conn.end(1, code, message)
    assert peer.read() == [
        Frame(frames.HEADERS, frames.END_HEADERS, 1, frames.RESPONSE_HEADERS, RESPONSE_FIELDS),
        Frame(frames.DATA, 0, 1, b"\x00\x00\x00\x00\x05hello"),
        Frame(frames.HEADERS, frames.END_HEADERS | frames.END_STREAM, 1, messages.status_block(code, message), trailers),
    ]
    assert not peer.conn.is_open(1)


def test_streamed_response() -> None:
    """Each message is its own length-prefixed DATA; headers go out once, before the first."""
    peer = established()
    peer.request(1)
    peer.conn.send_headers(1)
    peer.conn.send_headers(1)
    for payload in (b"one", b"", b"three"):
        peer.conn.send_message(1, payload)
    peer.conn.end(1, messages.OK)
    out = peer.read()
    assert kinds(out) == [frames.HEADERS, frames.DATA, frames.DATA, frames.DATA, frames.HEADERS]
    assert out[0].fields == RESPONSE_FIELDS
    assert data_frames(out, 1) == [messages.frame_message(p) for p in (b"one", b"", b"three")]
    assert out[-1].fields == [("grpc-status", "0")]


def test_headers_then_status_only() -> None:
    """After send_headers, end() without a message still sends separate trailers."""
    peer = established()
    peer.request(1)
    peer.conn.send_headers(1)
    peer.conn.end(1, messages.OK)
    out = peer.read()
    assert [(f.kind, f.flags, f.fields) for f in out] == [
        (frames.HEADERS, frames.END_HEADERS, RESPONSE_FIELDS),
        (frames.HEADERS, frames.END_HEADERS | frames.END_STREAM, [("grpc-status", "0")]),
    ]


@pytest.mark.parametrize("code, message, status", [
    pytest.param(messages.OK, "", [("grpc-status", "0")], id="ok"),
    pytest.param(messages.UNIMPLEMENTED, "Method not found: /x.Y/Z",
                 [("grpc-status", "12"), ("grpc-message", "Method not found: /x.Y/Z")], id="unimplemented"),
    pytest.param(messages.INTERNAL, "caf\u00e9\n", [("grpc-status", "13"), ("grpc-message", "caf%C3%A9%0A")],
                 id="message-percent-encoded"),
])
def test_trailers_only_response(code: int, message: str, status: list[tuple[str, str]]) -> None:
    """end() before any message is one HEADERS with END_STREAM carrying :status,
    content-type, grpc-status and grpc-message (a trailers-only response)."""
    peer = established()
    peer.request(1)
    peer.conn.end(1, code, message)
    assert peer.read() == [Frame(frames.HEADERS, frames.END_HEADERS | frames.END_STREAM, 1,
                                 messages.trailers_only_block(code, message), RESPONSE_FIELDS + status)]


def test_long_trailers_use_continuation() -> None:
    """A status block longer than the peer's max frame size is HEADERS then CONTINUATION."""
    peer = established()
    peer.request(1)
    peer.conn.end(1, messages.INTERNAL, "x" * 20000)
    out = peer.read()
    assert [(f.kind, f.flags) for f in out] == [(frames.HEADERS, frames.END_STREAM),
                                                (frames.CONTINUATION, frames.END_HEADERS)]
    assert out[0].fields == RESPONSE_FIELDS + [("grpc-status", "13"), ("grpc-message", "x" * 20000)]


@pytest.mark.parametrize("after", [
    pytest.param(lambda c: c.send_message(1, b"late"), id="send_message"),
    pytest.param(lambda c: c.send_headers(1), id="send_headers"),
    pytest.param(lambda c: c.end(1, messages.OK), id="end-again"),
    pytest.param(lambda c: c.reset(1), id="reset"),
])
def test_nothing_after_end(after: Callable[[Connection], None]) -> None:
    """end() closes the stream on this side: it is no longer open and whatever is asked of
    it afterwards sends nothing (RFC 9113 5.1, half-closed then closed)."""
    peer = established()
    peer.request(1)
    peer.conn.end(1, messages.OK)
    peer.read()
    assert not peer.conn.is_open(1)
    assert peer.conn.open_streams == 0
    after(peer.conn)
    assert peer.read() == []
    assert peer.conn.pending_bytes(1) == 0


def test_reset_by_server() -> None:
    """reset() sends RST_STREAM with the code and forgets the stream."""
    peer = established()
    peer.request(1)
    peer.conn.reset(1)
    assert peer.read() == [rst(1, frames.CANCEL)]
    assert not peer.conn.is_open(1)


# --- flow control on what the server sends ----------------------------------------------

@pytest.mark.parametrize("window, sizes", [
    pytest.param(10, [10], id="window-10"),
    pytest.param(1, [1], id="window-1"),
    pytest.param(0, [], id="window-0"),
    pytest.param(104, [104], id="one-byte-short"),
])
def test_stream_window_holds_data(window: int, sizes: list[int]) -> None:
    """DATA never exceeds the stream's send window, which starts at the peer's
    SETTINGS_INITIAL_WINDOW_SIZE; the rest waits, and so do the trailers (RFC 9113 6.9.1)."""
    peer = established(settings={frames.SETTINGS_INITIAL_WINDOW_SIZE: window})
    peer.request(1)
    message = messages.frame_message(bytes(range(100)))
    peer.conn.send_message(1, bytes(range(100)))
    peer.conn.end(1, messages.OK)
    out = peer.read()
    assert kinds(out) == [frames.HEADERS] + [frames.DATA] * len(sizes)
    assert [len(d) for d in data_frames(out, 1)] == sizes
    assert peer.conn.pending_bytes(1) == 105 - sum(sizes)
    assert peer.conn.is_open(1)
    # The window opens: the rest goes, then the trailers, and the stream is done.
    assert peer.receive(frames.window_update(1, 1000)) == [WindowOpened()]
    out2 = peer.read()
    assert kinds(out2) == [frames.DATA, frames.HEADERS]
    assert b"".join(data_frames(out + out2, 1)) == message
    assert out2[-1].flags & frames.END_STREAM and out2[-1].fields == [("grpc-status", "0")]
    assert peer.conn.pending_bytes(1) == 0
    assert not peer.conn.is_open(1)


def test_window_updates_release_data_step_by_step() -> None:
    """Each stream WINDOW_UPDATE lets out as many bytes as it adds, no more (RFC 9113 6.9)."""
    peer = established(settings={frames.SETTINGS_INITIAL_WINDOW_SIZE: 10})
    peer.request(1)
    peer.conn.send_message(1, bytes(100))
    assert [len(d) for d in data_frames(peer.read(), 1)] == [10]
    assert peer.conn.pending_bytes(1) == 95
    for step, left in [(40, 55), (1, 54), (50, 4)]:
        assert peer.receive(frames.window_update(1, step)) == [WindowOpened()]
        assert [len(d) for d in data_frames(peer.read(), 1)] == [step]
        assert peer.conn.pending_bytes(1) == left


@pytest.mark.parametrize("first, second", [
    pytest.param(frames.window_update(1, 1000), frames.window_update(0, 1000), id="stream-then-connection"),
    pytest.param(frames.window_update(0, 1000), frames.window_update(1, 1000), id="connection-then-stream"),
])
def test_both_windows_needed(first: bytes, second: bytes) -> None:
    """Data needs room in both the stream's and the connection's window: opening one
    alone sends nothing, opening the other then sends it (RFC 9113 6.9.1)."""
    peer = established()  # both windows start at 65535
    peer.request(1)
    peer.conn.send_message(1, bytes(frames.DEFAULT_WINDOW - 5))
    out = peer.read()
    assert sum(len(d) for d in data_frames(out, 1)) == frames.DEFAULT_WINDOW
    peer.conn.send_message(1, bytes(95))
    peer.conn.end(1, messages.OK)
    assert peer.read() == []
    assert peer.conn.pending_bytes(1) == 100
    peer.receive(first)
    assert peer.read() == []
    assert peer.conn.pending_bytes(1) == 100
    assert WindowOpened() in peer.receive(second)
    out = peer.read()
    assert kinds(out) == [frames.DATA, frames.HEADERS]
    assert out[0].payload == messages.frame_message(bytes(95))
    assert out[1].flags & frames.END_STREAM


def test_connection_window_shared_between_streams() -> None:
    """The connection window is one for all streams: what one stream used is not there for
    another, and when it opens, waiting streams go in the order they started to wait."""
    peer = established()
    peer.request(1)
    peer.request(3)
    peer.conn.send_message(1, bytes(frames.DEFAULT_WINDOW - 5 - 20))
    peer.conn.send_message(3, bytes(45))  # 50 bytes: 20 go now, 30 wait
    peer.conn.send_message(1, bytes(5))  # 10 bytes wait
    out = peer.read()
    assert sum(len(d) for d in data_frames(out, 1)) == frames.DEFAULT_WINDOW - 20
    assert [len(d) for d in data_frames(out, 3)] == [20]
    assert (peer.conn.pending_bytes(1), peer.conn.pending_bytes(3)) == (10, 30)
    assert peer.receive(frames.window_update(0, 35)) == [WindowOpened()]
    out = peer.read()
    assert [(f.stream_id, len(f.payload)) for f in out] == [(3, 30), (1, 5)]
    assert (peer.conn.pending_bytes(1), peer.conn.pending_bytes(3)) == (5, 0)


@pytest.mark.parametrize("max_frame, sizes", [
    pytest.param(None, [16384, 16384, 7237], id="default-16384"),
    pytest.param(20000, [20000, 20000, 5], id="20000"),
    pytest.param(frames.MAX_FRAME_LIMIT, [40005], id="largest"),
])
def test_peer_max_frame_size(max_frame: int | None, sizes: list[int]) -> None:
    """DATA frames are at most the peer's SETTINGS_MAX_FRAME_SIZE (RFC 9113 4.2, 6.5.2)."""
    settings = {frames.SETTINGS_INITIAL_WINDOW_SIZE: 1 << 20}
    if max_frame is not None:
        settings[frames.SETTINGS_MAX_FRAME_SIZE] = max_frame
    peer = established(settings=settings)
    peer.request(1)
    peer.conn.send_message(1, bytes(40000))
    peer.conn.end(1, messages.OK)
    out = peer.read()
    assert [len(d) for d in data_frames(out, 1)] == sizes
    assert kinds(out)[-1] == frames.HEADERS and out[-1].flags & frames.END_STREAM


def test_settings_initial_window_change_applies_to_open_streams() -> None:
    """A new SETTINGS_INITIAL_WINDOW_SIZE moves every open stream's window by the difference,
    below zero too; a rise releases waiting data (RFC 9113 6.9.2)."""
    peer = established(settings={frames.SETTINGS_INITIAL_WINDOW_SIZE: 50})
    peer.request(1)
    peer.conn.send_message(1, bytes(95))
    assert [len(d) for d in data_frames(peer.read(), 1)] == [50]
    assert peer.receive(frames.settings({frames.SETTINGS_INITIAL_WINDOW_SIZE: 10})) == []
    assert peer.read() == [settings_ack()]  # the window is now -40
    assert peer.receive(frames.window_update(1, 40)) == [WindowOpened()]
    assert peer.read() == []
    assert peer.receive(frames.settings({frames.SETTINGS_INITIAL_WINDOW_SIZE: 30})) == [WindowOpened()]
    out = peer.read()
    assert out[0] == settings_ack()
    assert [len(d) for d in data_frames(out, 1)] == [20]
    assert peer.conn.pending_bytes(1) == 30


def test_pending_bytes() -> None:
    """pending_bytes is what waits for the window on a stream, 0 for a stream unknown."""
    peer = established(settings={frames.SETTINGS_INITIAL_WINDOW_SIZE: 0})
    peer.request(1)
    assert peer.conn.pending_bytes(1) == 0
    peer.conn.send_message(1, bytes(10))
    peer.conn.send_message(1, bytes(20))
    assert peer.conn.pending_bytes(1) == 40
    assert peer.conn.pending_bytes(3) == 0


# --- flow control on what the server receives -----------------------------------------------

FULL = bytes(frames.DEFAULT_MAX_FRAME)


@pytest.mark.parametrize("last", [
    pytest.param(data(1, FULL), id="plain"),
    pytest.param(data(1, b"\x63" + bytes(frames.DEFAULT_MAX_FRAME - 100) + bytes(99), frames.PADDED), id="padding-counts"),
])
def test_stream_window_credited(last: bytes) -> None:
    """Once DATA on an open stream totals half its window (padding included) the server
    gives it back with a stream WINDOW_UPDATE (RFC 9113 6.9, 6.9.1)."""
    half = connection.STREAM_RECV_WINDOW // 2
    peer = established(max_body=1 << 22)
    peer.receive(peer.headers(1))
    frames_before = half // len(FULL) - 1
    assert peer.receive(data(1, FULL) * frames_before) == []
    assert peer.read() == []
    assert peer.receive(last) == []
    assert peer.read() == [window_update(1, half)]
    # and it starts counting again
    assert peer.receive(data(1, FULL)) == []
    assert peer.read() == []


def test_no_stream_credit_once_the_request_is_whole() -> None:
    """DATA with END_STREAM is not credited to its stream (nothing more can come on it)."""
    peer = established(max_body=1 << 22)
    peer.receive(peer.headers(1))
    count = connection.STREAM_RECV_WINDOW // 2 // len(FULL)
    events = peer.receive(data(1, FULL) * (count - 1), data(1, FULL, frames.END_STREAM))
    assert [type(e) for e in events] == [Request]
    assert peer.read() == []


@pytest.mark.parametrize("closed", [False, True], ids=["stream-open", "stream-closed-by-server"])
def test_connection_window_credited(closed: bool) -> None:
    """All DATA counts against the connection window, whatever its stream's state; at half
    of CONN_RECV_WINDOW the server sends a connection WINDOW_UPDATE (RFC 9113 6.9)."""
    half = connection.CONN_RECV_WINDOW // 2
    peer = established(max_body=100)
    peer.receive(peer.headers(1))
    if closed:
        peer.conn.end(1, messages.OK)
    peer.read()
    count = half // len(FULL)
    peer.receive(data(1, FULL) * (count - 1))
    out = peer.read()
    assert all(f.stream_id == 1 for f in out)
    peer.receive(data(1, FULL))
    out = peer.read()
    assert [f for f in out if f.stream_id == 0] == [window_update(0, half)]
    assert peer.read() == []


# --- the client ends a stream ------------------------------------------------------------

@pytest.mark.parametrize("code", [frames.CANCEL, frames.NO_ERROR, frames.INTERNAL_ERROR])
def test_client_reset(code: int) -> None:
    """RST_STREAM from the client is a StreamReset and the stream is forgotten: no answer
    goes out for it afterwards, data waiting for it is dropped (RFC 9113 6.4)."""
    peer = established(settings={frames.SETTINGS_INITIAL_WINDOW_SIZE: 5})
    peer.request(1)
    peer.conn.send_message(1, b"0123456789")
    peer.read()
    assert peer.receive(frames.rst_stream(1, code)) == [StreamReset(1, code)]
    assert not peer.conn.is_open(1)
    assert peer.conn.pending_bytes(1) == 0
    peer.conn.send_message(1, b"x")
    peer.conn.end(1, messages.CANCELLED)
    assert peer.receive(frames.window_update(1, 100), frames.window_update(0, 100)) == []
    assert peer.receive(data(1, b"late", frames.END_STREAM)) == []
    assert peer.read() == []
    assert peer.receive(frames.rst_stream(1, code)) == []


def test_client_reset_before_body() -> None:
    """A stream reset before its body ends never makes a Request."""
    peer = established()
    peer.receive(peer.headers(1), data(1, BODY[:3]))
    assert peer.receive(frames.rst_stream(1, frames.CANCEL)) == [StreamReset(1, frames.CANCEL)]
    assert peer.receive(data(1, BODY[3:], frames.END_STREAM)) == []


@pytest.mark.parametrize("increment, code", [
    pytest.param(2**31 - 1, frames.FLOW_CONTROL_ERROR, id="overflow"),
    pytest.param(0, frames.PROTOCOL_ERROR, id="zero-increment"),
])
def test_bad_stream_window_update(increment: int, code: int) -> None:
    """A WINDOW_UPDATE past 2^31-1 on a stream is a stream error FLOW_CONTROL_ERROR, an
    increment of 0 a stream error PROTOCOL_ERROR: RST_STREAM, and the connection lives
    (RFC 9113 6.9, 6.9.1)."""
    peer = established()
    peer.request(1)
    assert peer.receive(frames.window_update(1, increment)) == [StreamReset(1, code)]
    assert peer.read() == [rst(1, code)]
    assert not peer.conn.closed and not peer.conn.is_open(1)


# --- request bodies over the limit -----------------------------------------------------

def test_request_too_large_then_end_resets() -> None:
    """A body past max_body is RequestTooLarge once and its bytes are dropped; end() then
    sends a trailers-only response and RST_STREAM(NO_ERROR), since the client is still
    sending (RFC 9113 8.1)."""
    peer = established(max_body=10)
    events = peer.receive(peer.headers(1), data(1, bytes(8)), data(1, bytes(8)))
    assert events == [RequestTooLarge(1, REQUEST_HEADERS, 16)]
    assert peer.receive(data(1, bytes(8))) == []
    peer.conn.end(1, messages.RESOURCE_EXHAUSTED, "too big")
    out = peer.read()
    assert [(f.kind, f.flags, f.stream_id) for f in out] == [
        (frames.HEADERS, frames.END_HEADERS | frames.END_STREAM, 1), (frames.RST_STREAM, 0, 1)]
    assert out[0].fields == RESPONSE_FIELDS + [("grpc-status", "8"), ("grpc-message", "too big")]
    assert out[1] == rst(1, frames.NO_ERROR)
    assert peer.receive(data(1, bytes(8), frames.END_STREAM)) == []
    assert peer.read() == []


def test_request_too_large_then_end_stream() -> None:
    """A body that ended after going past max_body makes no Request, and the answer needs
    no RST_STREAM: the client is done sending."""
    peer = established(max_body=10)
    assert peer.receive(peer.headers(1), data(1, bytes(11))) == [RequestTooLarge(1, REQUEST_HEADERS, 11)]
    assert peer.receive(data(1, bytes(5), frames.END_STREAM)) == []
    peer.conn.end(1, messages.RESOURCE_EXHAUSTED, "too big")
    assert kinds(peer.read()) == [frames.HEADERS]


@pytest.mark.parametrize("size, too_large", [(9, False), (10, False), (11, True)], ids=["under", "exactly", "over"])
def test_max_body_boundary(size: int, too_large: bool) -> None:
    """max_body bytes are allowed, one more is too large."""
    peer = established(max_body=10)
    events = peer.receive(peer.headers(1), data(1, bytes(size), frames.END_STREAM))
    expected: Event = RequestTooLarge(1, REQUEST_HEADERS, size) if too_large else Request(1, REQUEST_HEADERS, bytes(size))
    assert events == [expected]


# --- protocol errors -------------------------------------------------------------------

def _headers_without_end(peer: Peer) -> bytes:
    return frame(frames.HEADERS, 0, 3, peer.block()[:3])


ERRORS: list[tuple[str, Callable[[Peer], bytes], int]] = [
    ("frame-over-16384", lambda p: frame(frames.DATA, 0, 1, bytes(16385)), frames.FRAME_SIZE_ERROR),
    ("frame-header-alone-says-16385", lambda p: b"\x00\x40\x01" + frame(frames.DATA, 0, 1)[3:], frames.FRAME_SIZE_ERROR),
    ("headers-on-stream-0", lambda p: frame(frames.HEADERS, frames.END_HEADERS, 0, p.block()), frames.PROTOCOL_ERROR),
    ("headers-on-even-stream", lambda p: frame(frames.HEADERS, frames.END_HEADERS, 4, p.block()), frames.PROTOCOL_ERROR),
    ("headers-padding-too-long", lambda p: frame(frames.HEADERS, frames.END_HEADERS | frames.PADDED, 3, b"\x09abc"),
     frames.PROTOCOL_ERROR),
    ("continuation-without-headers", lambda p: frame(frames.CONTINUATION, frames.END_HEADERS, 3, b"\x82"),
     frames.PROTOCOL_ERROR),
    ("continuation-on-another-stream", lambda p: _headers_without_end(p) + frame(frames.CONTINUATION, frames.END_HEADERS, 5),
     frames.PROTOCOL_ERROR),
    ("ping-inside-header-block", lambda p: _headers_without_end(p) + ping(), frames.PROTOCOL_ERROR),
    ("data-inside-header-block", lambda p: _headers_without_end(p) + data(3, b"x"), frames.PROTOCOL_ERROR),
    ("headers-inside-header-block", lambda p: _headers_without_end(p) + frame(frames.HEADERS, frames.END_HEADERS, 5, b"\x82"),
     frames.PROTOCOL_ERROR),
    ("header-block-over-64k", lambda p: frame(frames.HEADERS, 0, 3, bytes(16384))
     + frame(frames.CONTINUATION, 0, 3, bytes(16384)) * 4, frames.COMPRESSION_ERROR),
    ("push-promise", lambda p: frame(frames.PUSH_PROMISE, frames.END_HEADERS, 1, u32(2) + b"\x82"), frames.PROTOCOL_ERROR),
    ("ping-7-bytes", lambda p: ping(b"1234567"), frames.FRAME_SIZE_ERROR),
    ("ping-9-bytes", lambda p: ping(b"123456789"), frames.FRAME_SIZE_ERROR),
    ("ping-on-a-stream", lambda p: frame(frames.PING, 0, 1, PING_DATA), frames.PROTOCOL_ERROR),
    ("settings-length-7", lambda p: frame(frames.SETTINGS, 0, 0, bytes(7)), frames.FRAME_SIZE_ERROR),
    ("settings-length-5", lambda p: frame(frames.SETTINGS, 0, 0, bytes(5)), frames.FRAME_SIZE_ERROR),
    ("settings-ack-with-payload", lambda p: frame(frames.SETTINGS, frames.ACK, 0, bytes(6)), frames.FRAME_SIZE_ERROR),
    ("settings-on-a-stream", lambda p: frame(frames.SETTINGS, 0, 1), frames.PROTOCOL_ERROR),
    ("settings-initial-window-over-2^31-1", lambda p: frames.settings({frames.SETTINGS_INITIAL_WINDOW_SIZE: 2**31}),
     frames.FLOW_CONTROL_ERROR),
    ("settings-max-frame-below-16384", lambda p: frames.settings({frames.SETTINGS_MAX_FRAME_SIZE: 16383}),
     frames.PROTOCOL_ERROR),
    ("settings-max-frame-over-2^24-1", lambda p: frames.settings({frames.SETTINGS_MAX_FRAME_SIZE: 2**24}),
     frames.PROTOCOL_ERROR),
    ("hpack-index-0", lambda p: frame(frames.HEADERS, frames.END_HEADERS, 3, b"\x80"), frames.COMPRESSION_ERROR),
    ("hpack-index-past-the-tables", lambda p: frame(frames.HEADERS, frames.END_HEADERS, 3, b"\xff\x80\x01"), frames.COMPRESSION_ERROR),
    ("hpack-string-cut-short", lambda p: frame(frames.HEADERS, frames.END_HEADERS, 3, b"\x00\x05ab"), frames.COMPRESSION_ERROR),
    ("hpack-table-size-over-settings", lambda p: frame(frames.HEADERS, frames.END_HEADERS, 3, b"\x3f\xe2\x1f"),
     frames.COMPRESSION_ERROR),
    ("window-update-overflows-connection", lambda p: frames.window_update(0, 2**31 - 1), frames.FLOW_CONTROL_ERROR),
    ("window-update-zero-on-connection", lambda p: frames.window_update(0, 0), frames.PROTOCOL_ERROR),
    ("window-update-length-3", lambda p: frame(frames.WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"), frames.FRAME_SIZE_ERROR),
    ("rst-stream-length-3", lambda p: frame(frames.RST_STREAM, 0, 1, b"\x00\x00\x08"), frames.FRAME_SIZE_ERROR),
    ("rst-stream-on-stream-0", lambda p: frames.rst_stream(0, frames.CANCEL), frames.PROTOCOL_ERROR),
    ("data-on-stream-0", lambda p: data(0, b"x"), frames.PROTOCOL_ERROR),
    ("data-padding-too-long", lambda p: data(1, b"\x05abc", frames.PADDED), frames.PROTOCOL_ERROR),
]


@pytest.mark.parametrize("build, code", [pytest.param(b, code, id=name) for name, b, code in ERRORS])
def test_connection_error(build: Callable[[Peer], bytes], code: int) -> None:
    """A connection error is one ConnectionFailed and a GOAWAY with its code and the last
    stream id taken; nothing after it in the same bytes, or in later ones, is read
    (RFC 9113 5.4.1 and the sections of each rule)."""
    peer = established()
    assert peer.request(1) == [Request(1, REQUEST_HEADERS, BODY)]
    events = peer.receive(build(peer), ping())
    assert len(events) == 1 and isinstance(events[0], ConnectionFailed), events
    assert events[0].code == code
    out = peer.read()
    assert goaway_of(out) == (1, code)
    assert frames.PING not in kinds(out)
    assert peer.conn.closed
    assert peer.receive(ping(), peer.headers(3, end_stream=True)) == []
    assert peer.read() == []


# --- GOAWAY, refused streams and stream ids -----------------------------------------------

def test_goaway() -> None:
    """goaway() sends GOAWAY(NO_ERROR) with the last stream id taken, once; streams after
    it are refused with RST_STREAM(REFUSED_STREAM) and no event; open ones finish
    (RFC 9113 6.8, 8.7)."""
    peer = established()
    peer.request(1)
    peer.receive(peer.headers(3))
    peer.conn.goaway()
    peer.conn.goaway()
    out = peer.read()
    assert kinds(out) == [frames.GOAWAY]
    assert goaway_of(out) == (3, frames.NO_ERROR)
    assert peer.request(5) == []
    assert peer.read() == [rst(5, frames.REFUSED_STREAM)]
    assert not peer.conn.is_open(5)
    assert peer.receive(data(3, BODY, frames.END_STREAM)) == [Request(3, REQUEST_HEADERS, BODY)]
    peer.conn.end(1, messages.OK)
    assert kinds(peer.read()) == [frames.HEADERS]
    assert not peer.conn.closed


def test_goaway_after_failure_is_not_sent() -> None:
    """After a connection error's GOAWAY, goaway() sends no second one."""
    peer = established()
    peer.receive(data(0, b"x"))
    peer.read()
    peer.conn.goaway()
    assert peer.read() == []


def test_max_streams() -> None:
    """Past max_streams open streams a new one is refused with RST_STREAM(REFUSED_STREAM)
    and no event; its header block is still decoded, so the HPACK table stays in step
    and a later stream is taken once one closes (RFC 9113 5.1.2, 4.3)."""
    peer = established(max_streams=2)
    peer.request(1)
    peer.request(3)
    fields = [*REQUEST_FIELDS, ("x-trace-id", "4bf92f3577b34da6")]
    # The client's encoder adds x-trace-id to its dynamic table here ...
    assert peer.receive(peer.headers(5, end_stream=True, fields=fields)) == []
    assert peer.read() == [rst(5, frames.REFUSED_STREAM)]
    peer.conn.end(1, messages.OK)
    peer.read()
    # ... and refers to it by index here: right only if the server decoded stream 5's block.
    block = peer.block(fields)
    assert len(block) == len(fields)  # every field one indexed byte
    sent = frame(frames.HEADERS, frames.END_HEADERS | frames.END_STREAM, 7, block)
    assert peer.receive(sent) == [Request(7, dict(fields), b"")]
    assert peer.conn.open_streams == 2


@pytest.mark.parametrize("ids, taken", [
    pytest.param([1, 3, 5], [1, 3, 5], id="increasing"),
    pytest.param([1, 7, 9], [1, 7, 9], id="gaps-allowed"),
    pytest.param([5, 3], [5], id="lower-ignored"),
    pytest.param([1, 3, 7, 5, 9], [1, 3, 7, 9], id="lower-in-the-middle-ignored"),
    pytest.param([3, 3], [3], id="closed-id-reused"),
])
def test_stream_ids_increase(ids: list[int], taken: list[int]) -> None:
    """A HEADERS opening a stream id not above the highest seen is for a closed stream:
    ignored, no event and nothing sent (RFC 9113 5.1.1)."""
    peer = established()
    seen: list[int] = []
    for stream_id in ids:
        for event in peer.receive(peer.headers(stream_id, end_stream=True)):
            assert isinstance(event, Request)
            seen.append(event.stream_id)
            peer.conn.end(event.stream_id, messages.OK)
    assert seen == taken
    assert [f.stream_id for f in peer.read()] == taken
    assert not peer.conn.closed


@pytest.mark.parametrize("sent", [
    pytest.param(data(1, b"late"), id="data"),
    pytest.param(data(1, b"late", frames.END_STREAM), id="data-end-stream"),
    pytest.param(frames.window_update(1, 1000), id="window-update"),
    pytest.param(frames.rst_stream(1, frames.CANCEL), id="rst-stream"),
    pytest.param(frame(frames.PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10"), id="priority"),
])
def test_frames_for_a_closed_stream_are_ignored(sent: bytes) -> None:
    """Frames that arrive for a stream the server has closed make no event and no answer:
    the client may have sent them before it saw the end (RFC 9113 5.1, closed)."""
    peer = established()
    peer.request(1)
    peer.conn.end(1, messages.OK)
    peer.read()
    assert peer.receive(sent) == []
    assert peer.receive(peer.headers(1, end_stream=True)) == []  # request trailers, too
    assert peer.read() == []
    assert not peer.conn.closed


@pytest.mark.parametrize("sent", [
    pytest.param(data(9, b"x"), id="data"),
    pytest.param(frames.window_update(9, 1000), id="window-update"),
    pytest.param(frames.rst_stream(9, frames.CANCEL), id="rst-stream"),
    pytest.param(data(2, b"x"), id="data-on-even-stream"),
])
def test_frames_for_an_idle_stream_are_connection_errors(sent: bytes) -> None:
    """DATA, WINDOW_UPDATE or RST_STREAM on a stream the client never opened is a
    connection error PROTOCOL_ERROR (RFC 9113 5.1, idle; 6.4)."""
    peer = established()
    peer.request(1)
    events = peer.receive(sent)
    assert len(events) == 1 and isinstance(events[0], ConnectionFailed)
    assert events[0].code == frames.PROTOCOL_ERROR
