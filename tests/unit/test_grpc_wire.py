"""cri/grpc_server's pure wire code: HTTP/2 frames and HPACK literals (frames.py),
gRPC messages, timeouts and status blocks (messages.py).  Header blocks are
checked by decoding them with the hpack library, as a client would."""

from __future__ import annotations

import gzip
import struct
import urllib.parse
import zlib

import hpack
import pytest
from dockyard.cri.grpc_server import frames, messages
from dockyard.cri.grpc_server.messages import BadRequest
from hpack.hpack import decode_integer


def decode(block: bytes) -> list[tuple[str, str]]:
    """``block`` decoded by a fresh client-side HPACK decoder."""
    return [(name.decode(), value.decode()) for name, value in hpack.Decoder().decode(block, raw=True)]


def split_frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of each frame in ``data``, which holds whole frames only."""
    out: list[tuple[int, int, int, bytes]] = []
    pos = 0
    while pos < len(data):
        length, kind, flags, stream_id = frames.parse_header(data, pos)
        start = pos + frames.HEADER_SIZE
        out.append((kind, flags, stream_id, data[start:start + length]))
        pos = start + length
    assert pos == len(data), "trailing partial frame"
    return out


# --- frame headers -------------------------------------------------------------

@pytest.mark.parametrize("kind, flags, stream_id, length", [
    pytest.param(frames.DATA, 0, 1, 0, id="empty-data"),
    pytest.param(frames.DATA, frames.END_STREAM | frames.PADDED, 3, 100, id="data-flags"),
    pytest.param(frames.HEADERS, frames.END_HEADERS | frames.END_STREAM, 2**31 - 1, 7, id="highest-stream-id"),
    pytest.param(frames.SETTINGS, frames.ACK, 0, 0, id="settings-ack"),
    pytest.param(frames.WINDOW_UPDATE, 0, 0, 4, id="window-update"),
    pytest.param(frames.CONTINUATION, frames.END_HEADERS, 5, 16384, id="default-max-frame"),
    pytest.param(0xFA, 0xFF, 9, 65536, id="unknown-type-all-flags-17-bit-length"),
    pytest.param(frames.DATA, 0, 1, frames.MAX_FRAME_LIMIT, id="24-bit-max-length"),
])
def test_frame_header_round_trip(kind: int, flags: int, stream_id: int, length: int) -> None:
    """parse_header reads back the 24-bit length, type, flags and 31-bit stream id frame() wrote (RFC 9113 4.1)."""
    data = frames.frame(kind, flags, stream_id, b"\x00" * length)
    assert len(data) == frames.HEADER_SIZE + length
    assert frames.parse_header(data, 0) == (length, kind, flags, stream_id)
    assert frames.parse_header(b"junk" + data, 4) == (length, kind, flags, stream_id)


def test_parse_header_ignores_reserved_bit() -> None:
    """The stream identifier's reserved high bit is ignored on receipt (RFC 9113 4.1)."""
    raw = b"\x00\x00\x04" + bytes((frames.WINDOW_UPDATE, 0)) + struct.pack(">I", 0x80000003)
    assert frames.parse_header(raw, 0) == (4, frames.WINDOW_UPDATE, 0, 3)


@pytest.mark.parametrize("data, expected", [
    pytest.param(frames.settings({}), [], id="empty"),
    pytest.param(frames.settings({frames.SETTINGS_MAX_CONCURRENT_STREAMS: 100, frames.SETTINGS_INITIAL_WINDOW_SIZE: 2**31 - 1}),
                 [(3, 100), (4, 2**31 - 1)], id="two-pairs"),
])
def test_settings_round_trip(data: bytes, expected: list[tuple[int, int]]) -> None:
    """A SETTINGS frame is stream 0, no flags, 6 bytes per (16-bit id, 32-bit value) pair (RFC 9113 6.5.1)."""
    length, kind, flags, stream_id = frames.parse_header(data, 0)
    assert (length, kind, flags, stream_id) == (6 * len(expected), frames.SETTINGS, 0, 0)
    assert frames.parse_settings(data[frames.HEADER_SIZE:]) == expected


@pytest.mark.parametrize("data, expected", [
    pytest.param(frames.window_update(0, 1000), (frames.WINDOW_UPDATE, 0, b"\x00\x00\x03\xe8"), id="window-update"),
    pytest.param(frames.rst_stream(7, frames.CANCEL), (frames.RST_STREAM, 7, b"\x00\x00\x00\x08"), id="rst-stream"),
    pytest.param(frames.goaway(5, frames.PROTOCOL_ERROR, b"why"),
                 (frames.GOAWAY, 0, b"\x00\x00\x00\x05\x00\x00\x00\x01why"), id="goaway-with-debug"),
])
def test_control_frame_payloads(data: bytes, expected: tuple[int, int, bytes]) -> None:
    """WINDOW_UPDATE, RST_STREAM and GOAWAY payloads have the layouts of RFC 9113 6.9, 6.4 and 6.8."""
    [(kind, flags, stream_id, payload)] = split_frames(data)
    assert (kind, stream_id, payload) == expected
    assert flags == 0


# --- padding and priority ---------------------------------------------------------

PRIORITY_FIELDS = b"\x80\x00\x00\x01\x10"  # exclusive, depends on stream 1, weight 17


@pytest.mark.parametrize("flags, payload, expected", [
    pytest.param(0, b"abc", b"abc", id="plain"),
    pytest.param(frames.END_STREAM | frames.END_HEADERS, b"abc", b"abc", id="other-flags-ignored"),
    pytest.param(frames.PADDED, b"\x03abc\x00\x00\x00", b"abc", id="padded"),
    pytest.param(frames.PADDED, b"\x00abc", b"abc", id="padded-zero-padding"),
    pytest.param(frames.PADDED, b"\x03\x00\x00\x00", b"", id="padding-is-all"),
    pytest.param(frames.PRIORITY_FLAG, PRIORITY_FIELDS + b"abc", b"abc", id="priority"),
    pytest.param(frames.PRIORITY_FLAG, PRIORITY_FIELDS, b"", id="priority-only"),
    pytest.param(frames.PADDED | frames.PRIORITY_FLAG, b"\x02" + PRIORITY_FIELDS + b"abc\x00\x00", b"abc",
                 id="padded-and-priority"),
    pytest.param(frames.PADDED, b"\x04\x00\x00\x00", None, id="padding-longer-than-payload"),
    pytest.param(frames.PADDED, b"\xff", None, id="padding-255-of-nothing"),
    pytest.param(frames.PADDED, b"", None, id="padded-empty-payload"),
    pytest.param(frames.PRIORITY_FLAG, b"\x00\x00\x00", None, id="priority-fields-cut-short"),
    pytest.param(frames.PADDED | frames.PRIORITY_FLAG, b"\x02" + PRIORITY_FIELDS + b"\x00", None,
                 id="padding-eats-into-priority"),
])
def test_unpad(flags: int, payload: bytes, expected: bytes | None) -> None:
    """unpad drops the Pad Length byte, the padding and HEADERS' priority fields; padding
    longer than what remains is None, a PROTOCOL_ERROR (RFC 9113 6.1, 6.2)."""
    assert frames.unpad(flags, payload) == expected


# --- HPACK integers and literals -----------------------------------------------------

@pytest.mark.parametrize("value, prefix_bits, first, expected", [
    pytest.param(10, 5, 0, b"\x0a", id="C.1.1-10-in-5-bits"),
    pytest.param(1337, 5, 0, b"\x1f\x9a\x0a", id="C.1.2-1337-in-5-bits"),
    pytest.param(42, 8, 0, b"\x2a", id="C.1.3-42-in-8-bits"),
    pytest.param(0, 4, 0, b"\x00", id="zero"),
    pytest.param(30, 5, 0, b"\x1e", id="just-below-the-limit"),
    pytest.param(31, 5, 0, b"\x1f\x00", id="exactly-the-limit"),
    pytest.param(15, 4, 0, b"\x0f\x00", id="exactly-the-4-bit-limit"),
    pytest.param(127, 7, 0, b"\x7f\x00", id="exactly-the-7-bit-limit"),
    pytest.param(128, 7, 0, b"\x7f\x01", id="one-past-the-7-bit-limit"),
    pytest.param(31 + 127, 5, 0, b"\x1f\x7f", id="largest-two-bytes"),
    pytest.param(31 + 128, 5, 0, b"\x1f\x80\x01", id="smallest-three-bytes"),
    pytest.param(10, 5, 0xE0, b"\xea", id="high-bits-kept"),
    pytest.param(1337, 5, 0xE0, b"\xff\x9a\x0a", id="high-bits-kept-multi-byte"),
])
def test_hpack_int(value: int, prefix_bits: int, first: int, expected: bytes) -> None:
    """An N-bit prefix integer: the value itself below 2^N-1, else 2^N-1 and base-128
    continuation bytes, least significant first (RFC 7541 5.1, examples C.1)."""
    assert frames.hpack_int(value, prefix_bits, first) == expected


@pytest.mark.parametrize("prefix_bits", [4, 5, 6, 7, 8])
@pytest.mark.parametrize("value", [0, 1, 14, 15, 16, 126, 127, 128, 254, 255, 256, 16383, 2**20, 2**31 - 1])
def test_hpack_int_decodes(value: int, prefix_bits: int) -> None:
    """Whatever the prefix, the hpack library's decoder reads back the value and every byte."""
    data = frames.hpack_int(value, prefix_bits)
    assert decode_integer(data, prefix_bits) == (value, len(data))


@pytest.mark.parametrize("block, fields", [
    pytest.param(frames.literal(frames.STATIC_CONTENT_TYPE, b"application/grpc"),
                 [("content-type", "application/grpc")], id="static-name-31"),
    pytest.param(frames.literal(4, b"/runtime.v1.RuntimeService/Version"),
                 [(":path", "/runtime.v1.RuntimeService/Version")], id="static-name-4"),
    pytest.param(frames.literal(b"grpc-status", b"0"), [("grpc-status", "0")], id="new-name"),
    pytest.param(frames.literal(b"grpc-message", b""), [("grpc-message", "")], id="empty-value"),
    pytest.param(frames.literal(b"x-long", b"v" * 300), [("x-long", "v" * 300)], id="multi-byte-length"),
    pytest.param(frames.literal(b"n" * 127, b"v" * 127), [("n" * 127, "v" * 127)], id="lengths-at-7-bit-limit"),
    pytest.param(frames.literal(b"a", b"1") + frames.literal(b"b", b"2"), [("a", "1"), ("b", "2")], id="two-fields"),
    pytest.param(frames.RESPONSE_HEADERS, [(":status", "200"), ("content-type", "application/grpc")],
                 id="response-headers"),
    pytest.param(frames.TRAILERS_OK, [("grpc-status", "0")], id="trailers-ok"),
])
def test_literal_blocks_decode(block: bytes, fields: list[tuple[str, str]]) -> None:
    """Literal fields without indexing (RFC 7541 6.2.2), plain strings (5.2), decode to
    the fields meant and leave the decoder's dynamic table empty."""
    decoder = hpack.Decoder()
    assert [(n.decode(), v.decode()) for n, v in decoder.decode(block, raw=True)] == fields
    assert len(decoder.header_table.dynamic_entries) == 0


@pytest.mark.parametrize("name", [frames.STATIC_CONTENT_TYPE, 1, b"grpc-status"], ids=["index-31", "index-1", "name"])
def test_literal_is_without_indexing_and_not_huffman(name: bytes | int) -> None:
    """The first byte's top four bits are 0000 (literal without indexing) and the value's H bit is 0."""
    block = frames.literal(name, b"abc")
    assert block[0] & 0xF0 == 0
    assert block.endswith(b"\x03abc")


# --- header blocks split into frames ----------------------------------------------

@pytest.mark.parametrize("size, max_frame, end_stream, sizes", [
    pytest.param(10, 16, True, [10], id="fits"),
    pytest.param(16, 16, False, [16], id="exactly-max-frame"),
    pytest.param(0, 16, True, [0], id="empty-block"),
    pytest.param(17, 16, True, [16, 1], id="one-byte-over"),
    pytest.param(32, 16, False, [16, 16], id="two-full-frames"),
    pytest.param(40, 16, True, [16, 16, 8], id="headers-and-two-continuations"),
    pytest.param(40000, frames.DEFAULT_MAX_FRAME, True, [16384, 16384, 7232], id="default-max-frame"),
])
def test_header_frames(size: int, max_frame: int, end_stream: bool, sizes: list[int]) -> None:
    """A block longer than the peer's max frame size goes out as HEADERS then CONTINUATIONs
    on the same stream; END_STREAM only on HEADERS, END_HEADERS only on the last frame
    (RFC 9113 6.2, 6.10)."""
    block = bytes(i % 251 for i in range(size))
    parts = split_frames(frames.header_frames(7, block, end_stream, max_frame))
    assert [len(payload) for _, _, _, payload in parts] == sizes
    assert b"".join(payload for _, _, _, payload in parts) == block
    assert [kind for kind, _, _, _ in parts] == [frames.HEADERS] + [frames.CONTINUATION] * (len(sizes) - 1)
    assert {stream_id for _, _, stream_id, _ in parts} == {7}
    expected_flags = [0] * len(sizes)
    expected_flags[0] |= frames.END_STREAM if end_stream else 0
    expected_flags[-1] |= frames.END_HEADERS
    assert [flags for _, flags, _, _ in parts] == expected_flags


# --- gRPC messages ---------------------------------------------------------------

def test_frame_message() -> None:
    """A gRPC message is a compressed-flag byte (0), a 4-byte big-endian length and the bytes."""
    assert messages.frame_message(b"hello") == b"\x00\x00\x00\x00\x05hello"
    assert messages.frame_message(b"") == b"\x00\x00\x00\x00\x00"


def compressed(data: bytes) -> bytes:
    """``data`` as a message with the compressed flag set."""
    return struct.pack(">BI", 1, len(data)) + data


PAYLOAD = b"a protobuf message " * 20
BOMB = gzip.compress(b"\x00" * 100_001)


@pytest.mark.parametrize("body, encoding, expected", [
    pytest.param(messages.frame_message(PAYLOAD), None, PAYLOAD, id="plain"),
    pytest.param(messages.frame_message(b""), None, b"", id="empty-message"),
    pytest.param(messages.frame_message(PAYLOAD), "gzip", PAYLOAD, id="flag-0-with-grpc-encoding-gzip"),
    pytest.param(compressed(gzip.compress(PAYLOAD)), "gzip", PAYLOAD, id="gzip"),
    pytest.param(compressed(zlib.compress(PAYLOAD)), "deflate", PAYLOAD, id="deflate"),
    pytest.param(compressed(gzip.compress(b"\x00" * 100_000)), "gzip", b"\x00" * 100_000, id="gzip-exactly-max-size"),
])
def test_one_message(body: bytes, encoding: str | None, expected: bytes) -> None:
    """A request body that is one length-prefixed message gives its payload, inflated
    when the compressed flag is set and grpc-encoding is gzip or deflate."""
    assert messages.one_message(body, encoding, 100_000) == expected


@pytest.mark.parametrize("body, encoding, code", [
    pytest.param(b"", None, messages.INTERNAL, id="empty-body"),
    pytest.param(b"\x00\x00\x00\x00", None, messages.INTERNAL, id="short-prefix"),
    pytest.param(b"\x00\x00\x00\x00\x0aabcde", None, messages.INTERNAL, id="fewer-bytes-than-length"),
    pytest.param(b"\x00\x00\x00\x00\x02abcde", None, messages.INTERNAL, id="more-bytes-than-length"),
    pytest.param(messages.frame_message(b"a") * 2, None, messages.INTERNAL, id="two-messages"),
    pytest.param(compressed(gzip.compress(PAYLOAD)), "snappy", messages.UNIMPLEMENTED, id="unknown-encoding"),
    pytest.param(compressed(gzip.compress(PAYLOAD)), "br", messages.UNIMPLEMENTED, id="unknown-encoding-br"),
    pytest.param(compressed(PAYLOAD), None, messages.INTERNAL, id="compressed-without-grpc-encoding"),
    pytest.param(compressed(PAYLOAD), "identity", messages.INTERNAL, id="compressed-with-identity"),
    pytest.param(b"\x02" + messages.frame_message(PAYLOAD)[1:], None, messages.INTERNAL, id="flag-2"),
    pytest.param(compressed(BOMB), "gzip", messages.RESOURCE_EXHAUSTED, id="gzip-bomb"),
    pytest.param(compressed(zlib.compress(b"\x00" * 100_001)), "deflate", messages.RESOURCE_EXHAUSTED,
                 id="deflate-bomb"),
    pytest.param(compressed(b"not gzip at all"), "gzip", messages.INTERNAL, id="corrupt-gzip"),
    pytest.param(compressed(b"not zlib at all"), "deflate", messages.INTERNAL, id="corrupt-deflate"),
    pytest.param(compressed(zlib.compress(PAYLOAD)), "gzip", messages.INTERNAL, id="deflate-sent-as-gzip"),
    pytest.param(compressed(gzip.compress(PAYLOAD)[:-20]), "gzip", messages.INTERNAL, id="truncated-gzip"),
    pytest.param(compressed(gzip.compress(PAYLOAD)[:-4]), "gzip", messages.INTERNAL, id="gzip-without-size-trailer"),
    pytest.param(compressed(zlib.compress(PAYLOAD)[:-4]), "deflate", messages.INTERNAL, id="deflate-without-adler32"),
])
def test_one_message_refused(body: bytes, encoding: str | None, code: int) -> None:
    """A body that is not exactly one message, uses an encoding this server lacks,
    inflates past max_size or does not inflate whole is a BadRequest with the status grpc
    servers give."""
    with pytest.raises(BadRequest) as caught:
        messages.one_message(body, encoding, 100_000)
    assert caught.value.code == code
    assert caught.value.message == str(caught.value)


@pytest.mark.parametrize("value, seconds", [
    pytest.param("2H", 7200.0, id="hours"),
    pytest.param("3M", 180.0, id="minutes"),
    pytest.param("1S", 1.0, id="seconds"),
    pytest.param("100m", 0.1, id="milliseconds"),
    pytest.param("250u", 250e-6, id="microseconds"),
    pytest.param("7n", 7e-9, id="nanoseconds"),
    pytest.param("0S", 0.0, id="zero"),
    pytest.param("00000010S", 10.0, id="leading-zeros"),
    pytest.param("99999999m", 99999.999, id="eight-digits"),
    pytest.param("123456789S", None, id="nine-digits"),
    pytest.param("1s", None, id="lower-case-s-is-no-unit"),
    pytest.param("1X", None, id="bad-unit"),
    pytest.param("10", None, id="no-unit"),
    pytest.param("", None, id="empty"),
    pytest.param("S", None, id="no-digits"),
    pytest.param("-1S", None, id="negative"),
    pytest.param("1.5S", None, id="decimal-point"),
    pytest.param(" 1S", None, id="leading-space"),
    pytest.param("\u00b2S", None, id="latin-1-superscript-digit"),
    pytest.param("\u0661S", None, id="arabic-indic-digit"),
])
def test_parse_timeout(value: str, seconds: float | None) -> None:
    """grpc-timeout is 1 to 8 ASCII digits and one of H M S m u n; anything else is None
    (no deadline), never an exception."""
    parsed = messages.parse_timeout(value)
    if seconds is None:
        assert parsed is None
    else:
        assert parsed == pytest.approx(seconds)


@pytest.mark.parametrize("message, encoded", [
    pytest.param("", b"", id="empty"),
    pytest.param("Method not found: /a.B/C", b"Method not found: /a.B/C", id="plain-ascii"),
    pytest.param(" ~!\"#$&'()*+,-./:;<=>?@[\\]^_`{|}", b" ~!\"#$&'()*+,-./:;<=>?@[\\]^_`{|}", id="printable-punctuation"),
    pytest.param("100%", b"100%25", id="percent"),
    pytest.param("%41", b"%2541", id="percent-escape-lookalike"),
    pytest.param("caf\u00e9", b"caf%C3%A9", id="two-byte-utf8"),
    pytest.param("\u2713 done", b"%E2%9C%93 done", id="three-byte-utf8"),
    pytest.param("line1\nline2", b"line1%0Aline2", id="newline"),
    pytest.param("a\tb\r", b"a%09b%0D", id="tab-and-cr"),
    pytest.param("\x00\x7f", b"%00%7F", id="nul-and-del"),
])
def test_percent_encode(message: str, encoded: bytes) -> None:
    """grpc-message is UTF-8 with every byte outside 0x20-0x7E, and '%', written %XX
    in upper-case hex (PROTOCOL-HTTP2.md)."""
    assert messages.percent_encode(message) == encoded
    assert urllib.parse.unquote(encoded.decode("ascii")) == message


@pytest.mark.parametrize("block, fields", [
    pytest.param(messages.status_block(messages.OK, ""), [("grpc-status", "0")], id="ok"),
    pytest.param(messages.status_block(messages.OK, "fine"), [("grpc-status", "0"), ("grpc-message", "fine")],
                 id="ok-with-message"),
    pytest.param(messages.status_block(messages.UNIMPLEMENTED, "Method not found: /x.Y/Z"),
                 [("grpc-status", "12"), ("grpc-message", "Method not found: /x.Y/Z")], id="unimplemented"),
    pytest.param(messages.status_block(messages.INTERNAL, "50% \u2713\n"),
                 [("grpc-status", "13"), ("grpc-message", "50%25 %E2%9C%93%0A")], id="message-percent-encoded"),
    pytest.param(messages.status_block(messages.CANCELLED, ""), [("grpc-status", "1")], id="no-message"),
    pytest.param(messages.trailers_only_block(messages.OK, ""),
                 [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "0")],
                 id="trailers-only-ok"),
    pytest.param(messages.trailers_only_block(messages.RESOURCE_EXHAUSTED, "too big"),
                 [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "8"),
                  ("grpc-message", "too big")], id="trailers-only-error"),
])
def test_status_blocks(block: bytes, fields: list[tuple[str, str]]) -> None:
    """Trailers carry grpc-status (decimal) and grpc-message when there is one; a
    trailers-only response also carries :status 200 and content-type application/grpc,
    pseudo-header first."""
    assert decode(block) == fields
