"""HTTP/2 frames (RFC 9113 section 4 and 6): the header layout, the types and
codes a gRPC server meets, and the few header blocks it sends.  Pure.

Facts about the parts used here:
- A frame is a 9-byte header (24-bit length, type, flags, a reserved bit and
  a 31-bit stream id) and its payload.  PADDED and PRIORITY add fields to
  the front of a HEADERS payload, PADDED to a DATA payload.
- The server sends header blocks without touching HPACK's dynamic table:
  every field is a "literal without indexing" (RFC 7541 6.2.2), its name
  taken from the static table where it is there, strings never Huffman
  coded.  Such blocks need no encoder state, so the ones that never change
  (":status 200" and the content type) are built once.
"""

from __future__ import annotations

import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADER_SIZE = 9

# frame types
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

# flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# settings
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6

# error codes
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9

DEFAULT_WINDOW = 65535
DEFAULT_MAX_FRAME = 16384
MAX_WINDOW = 2**31 - 1
MAX_FRAME_LIMIT = 2**24 - 1

_HEADER = struct.Struct(">BHBBI")  # the 24-bit length as a byte and a short


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    size = len(payload)
    return _HEADER.pack(size >> 16, size & 0xFFFF, kind, flags, stream_id) + payload


def parse_header(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int, int, int]:
    """(length, type, flags, stream id) of the frame header at ``pos``."""
    high, low, kind, flags, stream_id = _HEADER.unpack_from(buf, pos)
    return (high << 16) | low, kind, flags, stream_id & 0x7FFFFFFF


def settings(pairs: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", key, value) for key, value in pairs.items()))


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    """The (identifier, value) pairs; the caller checked the length is a multiple of 6."""
    return [struct.unpack_from(">HI", payload, off) for off in range(0, len(payload), 6)]


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_stream_id, code) + debug)


def unpad(flags: int, payload: bytes) -> bytes | None:
    """A DATA or HEADERS payload without its padding (and a HEADERS one
    without its priority fields); None when the padding is longer than
    the payload (a PROTOCOL_ERROR)."""
    start, end = 0, len(payload)
    if flags & PADDED:
        if not payload:
            return None
        start, end = 1, end - payload[0]
    if flags & PRIORITY_FLAG:
        start += 5
    if end < start:
        return None
    return payload[start:end] if (start or end != len(payload)) else payload


# --- HPACK literals (RFC 7541 5.1, 5.2, 6.2.2) -------------------------------

def hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """``value`` in an N-bit prefix integer, the first byte's high bits ``first``."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_string(value: bytes) -> bytes:
    return hpack_int(len(value), 7) + value  # H bit 0: not Huffman coded


def literal(name: bytes | int, value: bytes) -> bytes:
    """A literal field without indexing; ``name`` an HPACK static table index
    or the name itself."""
    if isinstance(name, int):
        return hpack_int(name, 4) + hpack_string(value)
    return b"\x00" + hpack_string(name) + hpack_string(value)


STATIC_STATUS_200 = b"\x88"  # indexed field 8, ":status: 200"
STATIC_CONTENT_TYPE = 31  # the static table's "content-type" name
RESPONSE_HEADERS = STATIC_STATUS_200 + literal(STATIC_CONTENT_TYPE, b"application/grpc")
TRAILERS_OK = literal(b"grpc-status", b"0")


def header_frames(stream_id: int, block: bytes, end_stream: bool, max_frame: int) -> bytes:
    """``block`` as one HEADERS frame, or HEADERS and CONTINUATIONs when it is
    longer than the peer's frame size."""
    flags = END_STREAM if end_stream else 0
    if len(block) <= max_frame:
        return frame(HEADERS, flags | END_HEADERS, stream_id, block)
    parts = [block[i:i + max_frame] for i in range(0, len(block), max_frame)]
    out = [frame(HEADERS, flags, stream_id, parts[0])]
    out += [frame(CONTINUATION, 0, stream_id, part) for part in parts[1:-1]]
    out.append(frame(CONTINUATION, END_HEADERS, stream_id, parts[-1]))
    return b"".join(out)
