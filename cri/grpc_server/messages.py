"""gRPC over HTTP/2 (grpc's PROTOCOL-HTTP2.md): length-prefixed messages,
the grpc-timeout header and the status trailers.  Pure.

A message on the wire is a compressed flag byte, a 4-byte big-endian
length and the bytes.  dockyardd never compresses what it sends and takes
gzip and deflate (which grpc-go and grpc's C core can be told to send) as
well as uncompressed requests.
"""

from __future__ import annotations

import struct
import zlib

from . import frames

OK = 0
CANCELLED = 1
UNKNOWN = 2
DEADLINE_EXCEEDED = 4
RESOURCE_EXHAUSTED = 8
INTERNAL = 13
UNIMPLEMENTED = 12
UNAVAILABLE = 14

_PREFIX = struct.Struct(">BI")


class BadRequest(Exception):
    """A request body this server cannot take; ``code`` is the gRPC status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def frame_message(payload: bytes) -> bytes:
    return _PREFIX.pack(0, len(payload)) + payload


def one_message(body: bytes, encoding: str | None, max_size: int) -> bytes:
    """The single message of a unary or server-streaming request."""
    if len(body) < 5:
        raise BadRequest(INTERNAL, f"request carries {len(body)} bytes, not one length-prefixed message")
    compressed, size = _PREFIX.unpack_from(body)
    if size != len(body) - 5:
        raise BadRequest(INTERNAL, f"request message says {size} bytes and {len(body) - 5} follow")
    payload = body[5:]
    if compressed == 0:
        return payload
    if compressed != 1:
        raise BadRequest(INTERNAL, f"request message flag is {compressed}, neither 0 nor 1 (compressed)")
    if encoding in (None, "identity"):
        raise BadRequest(INTERNAL, "request message is flagged compressed and its grpc-encoding is "
                                   f"{encoding or 'missing'}")
    if encoding in ("gzip", "deflate"):
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        try:
            out = inflate.decompress(payload, max_size + 1)
        except zlib.error as err:
            raise BadRequest(INTERNAL, f"request message: {encoding}: {err}") from None
        if len(out) > max_size:
            raise BadRequest(RESOURCE_EXHAUSTED, f"received message larger than max (over {max_size} bytes once inflated)")
        if not inflate.eof:
            raise BadRequest(INTERNAL, f"request message: {encoding}: truncated compressed data")
        return out
    raise BadRequest(UNIMPLEMENTED, f"request message compressed with {encoding}, "
                                    "which dockyardd does not take (gzip, deflate)")


_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_timeout(value: str) -> float | None:
    """grpc-timeout ("1S", "100m", at most 8 digits and a unit) in seconds; None
    when it is malformed, which grpc servers take as no deadline."""
    digits, unit = value[:-1], value[-1:]
    if not (0 < len(digits) <= 8 and digits.isascii() and digits.isdigit() and unit in _TIMEOUT_UNITS):
        return None
    return int(digits) * _TIMEOUT_UNITS[unit]


def percent_encode(message: str) -> bytes:
    """grpc-message's encoding: UTF-8, then every byte outside printable
    ASCII, and '%' itself, as %XX."""
    raw = message.encode("utf-8", "replace")
    if all(0x20 <= b <= 0x7E and b != 0x25 for b in raw):
        return raw
    return b"".join(bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in raw)


def status_block(code: int, message: str) -> bytes:
    """The trailers' header block for a status (after the response headers)."""
    if code == OK and not message:
        return frames.TRAILERS_OK
    block = frames.literal(b"grpc-status", str(code).encode())
    if message:
        block += frames.literal(b"grpc-message", percent_encode(message))
    return block


def trailers_only_block(code: int, message: str) -> bytes:
    """A response that is only a status: the headers and the trailers in one block."""
    return frames.RESPONSE_HEADERS + status_block(code, message)
