"""SPDY/3.1 framing on bytes alone: encode, decode, state, errors."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from dockyard.cri.streaming import spdy
from dockyard.cri.streaming.spdy import (Connection, Data, FrameReader, GoAway, HeaderCompressor, Ping,
                                         ProtocolError, RstStream, Settings, StreamEnded, SynReply, SynStream,
                                         WindowUpdate)


def test_dictionary_is_the_draft3_dictionary() -> None:
    """The header dictionary has the spec's 1423 bytes (pinned by digest)."""
    assert len(spdy.HEADER_DICTIONARY) == 1423
    assert hashlib.sha256(spdy.HEADER_DICTIONARY).hexdigest() == \
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
    assert spdy.HEADER_DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.HEADER_DICTIONARY.endswith(b"*,enq=0.")


FRAMES = [
    SynStream(1, (("streamtype", "error"),)),
    SynStream(3, (("streamtype", "stdin"), ("port", "80")), associated_id=0, priority=5, fin=True),
    SynStream(5, (), unidirectional=True),
    SynReply(1, (("x", "a\0b"),), fin=False),
    SynReply(7, (), fin=True),
    spdy.HeadersFrame(1, (("k", "v"),)),
    RstStream(9, spdy.RstStatus.CANCEL),
    Data(1, b"hello"),
    Data(1, b"", fin=True),
    Data(2**31 - 1, b"x" * 70000),
    Settings(((spdy.SettingId.INITIAL_WINDOW_SIZE, 0, 1 << 20), (4, 1, 100)), clear=True),
    Ping(1),
    GoAway(7, spdy.GoAwayStatus.PROTOCOL_ERROR),
    WindowUpdate(0, 1024),
    WindowUpdate(3, 2**31 - 1),
]


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: type(f).__name__)
def test_round_trip(frame: spdy.Frame) -> None:
    """Every frame type decodes to what was encoded."""
    comp = HeaderCompressor()
    wire = spdy.encode_frame(frame, comp)
    assert FrameReader().feed(wire) == [frame]


def test_byte_at_a_time_and_shared_compression_context() -> None:
    """Frames split anywhere still decode; header blocks share one zlib stream."""
    comp = HeaderCompressor()
    wire = b"".join(spdy.encode_frame(f, comp) for f in FRAMES)
    reader = FrameReader()
    got: list[spdy.Frame] = []
    for i in range(len(wire)):
        got += reader.feed(wire[i:i + 1])
    assert got == FRAMES
    # the second block reuses the first's history: decoding it alone fails
    comp2 = HeaderCompressor()
    a = spdy.encode_frame(SynStream(1, (("streamtype", "stdout"),)), comp2)
    b = spdy.encode_frame(SynStream(3, (("streamtype", "stdout"),)), comp2)
    assert len(b) < len(a)
    with pytest.raises(ProtocolError):
        FrameReader().feed(b)


def test_known_wire_layout() -> None:
    """Control and data headers have the draft-3 bit layout."""
    assert spdy.encode_frame(Ping(0x01020304), HeaderCompressor()) == bytes.fromhex("80030006 00000004 01020304")
    assert spdy.encode_frame(Data(5, b"ab", fin=True), HeaderCompressor()) == bytes.fromhex("00000005 01000002 6162")
    assert spdy.encode_frame(RstStream(3, 5), HeaderCompressor()) == bytes.fromhex("80030003 00000008 00000003 00000005")


def _headers_frame(raw_block: bytes) -> bytes:
    z = zlib.compressobj(zdict=spdy.HEADER_DICTIONARY)
    block = z.compress(raw_block) + z.flush(zlib.Z_SYNC_FLUSH)
    payload = struct.pack(">IIBB", 1, 0, 0, 0) + block
    return struct.pack(">HHI", 0x8003, 1, len(payload)) + payload


def _block(*pairs: tuple[bytes, bytes]) -> bytes:
    out = struct.pack(">I", len(pairs))
    for n, v in pairs:
        out += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
    return out


MALFORMED = {
    "version 2": struct.pack(">HHI", 0x8002, 6, 4) + b"\0\0\0\1",
    "ping too long": struct.pack(">HHI", 0x8003, 6, 5) + b"\0" * 5,
    "rst too short": struct.pack(">HHI", 0x8003, 3, 4) + b"\0" * 4,
    "syn_stream too short": struct.pack(">HHI", 0x8003, 1, 6) + b"\0" * 6,
    "data on stream 0": struct.pack(">II", 0, 1) + b"x",
    "settings count lies": struct.pack(">HHI", 0x8003, 4, 12) + struct.pack(">III", 5, 0, 0),
    "window update zero": struct.pack(">HHI", 0x8003, 9, 8) + struct.pack(">II", 1, 0),
    "garbage header block": struct.pack(">HHI", 0x8003, 1, 14) + struct.pack(">IIBB", 1, 0, 0, 0) + b"\xde\xad\xbe\xef",
    "uppercase header": _headers_frame(_block((b"StreamType", b"x"))),
    "duplicate header": _headers_frame(_block((b"a", b"1"), (b"a", b"2"))),
    "truncated block": _headers_frame(_block((b"a", b"1"))[:-1]),
    "trailing bytes in block": _headers_frame(_block((b"a", b"1")) + b"zz"),
}


@pytest.mark.parametrize("wire", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_frames_are_session_errors(wire: bytes) -> None:
    """A malformed frame raises ProtocolError and queues GOAWAY(PROTOCOL_ERROR)."""
    conn = Connection(client=False)
    with pytest.raises(ProtocolError):
        conn.receive_data(wire)
    out = FrameReader().feed(conn.data_to_send())
    assert out == [GoAway(0, spdy.GoAwayStatus.PROTOCOL_ERROR)]


def test_unknown_control_type_is_ignored() -> None:
    """The spec says: ignore control frames of unknown type."""
    assert FrameReader().feed(struct.pack(">HHI", 0x8003, 0x77, 2) + b"zz") == []


def _pair() -> tuple[Connection, Connection]:
    return Connection(client=True), Connection(client=False)


def _pipe(a: Connection, b: Connection) -> list[spdy.Event]:
    return b.receive_data(a.data_to_send())


def test_stream_lifecycle_both_directions() -> None:
    """SYN_STREAM/SYN_REPLY/DATA/FIN move both ends to CLOSED, with StreamEnded once."""
    client, server = _pair()
    sid = client.open_stream((("streamtype", "stdin"),))
    assert sid == 1
    ev = _pipe(client, server)
    assert ev == [SynStream(1, (("streamtype", "stdin"),))]
    server.reply(1)
    assert _pipe(server, client) == [SynReply(1, ())]
    client.send_data(1, b"abc", fin=True)
    assert _pipe(client, server) == [Data(1, b"abc", True)]
    assert server.streams[1].state is spdy.StreamState.HALF_CLOSED_REMOTE
    ended = server.send_data(1, b"out", fin=True)
    assert ended == [StreamEnded(1)] and 1 not in server.streams
    assert _pipe(server, client) == [Data(1, b"out", True), StreamEnded(1)]
    assert client.streams == {}


def test_send_after_fin_is_a_local_error() -> None:
    client, _ = _pair()
    sid = client.open_stream((), fin=True)
    with pytest.raises(spdy.StreamStateError):
        client.send_data(sid, b"x")


@pytest.mark.parametrize("case", ["unknown", "after_fin"])
def test_data_on_bad_stream_resets_only_that_stream(case: str) -> None:
    """DATA on an unknown or half-closed stream gets RST_STREAM; the session goes on."""
    client, server = _pair()
    client.open_stream(())
    _pipe(client, server)
    if case == "unknown":
        wire = spdy.encode_frame(Data(9, b"x"), HeaderCompressor())
        status = spdy.RstStatus.INVALID_STREAM
    else:
        client.send_data(1, b"", fin=True)
        _pipe(client, server)
        wire = spdy.encode_frame(Data(1, b"late"), HeaderCompressor())
        status = spdy.RstStatus.STREAM_ALREADY_CLOSED
    server.receive_data(wire)
    rst = [f for f in FrameReader().feed(server.data_to_send()) if isinstance(f, RstStream)]
    assert rst and rst[0].status == status
    assert not server.goaway_sent


@pytest.mark.parametrize("sid", [2, 1])
def test_stream_ids_must_be_odd_and_increasing(sid: int) -> None:
    """A server rejects even ids from a client and ids that go backwards."""
    server = Connection(client=False)
    comp = HeaderCompressor()
    server.receive_data(spdy.encode_frame(SynStream(3, ()), comp))
    with pytest.raises(ProtocolError):
        server.receive_data(spdy.encode_frame(SynStream(sid, ()), comp))


def test_ping_echo_and_goaway() -> None:
    """The peer's ping is echoed, our own is not; after GOAWAY no new stream opens."""
    client, server = _pair()
    client.ping(1)
    _pipe(client, server)
    assert FrameReader().feed(server.data_to_send()) == [Ping(1)]
    server.receive_data(spdy.encode_frame(Ping(2), HeaderCompressor()))
    assert server.data_to_send() == b""
    server.goaway()
    _pipe(server, client)
    assert client.goaway_received
    with pytest.raises(spdy.StreamStateError):
        client.open_stream(())


def test_rst_from_peer_ends_stream_and_window_update_is_sent() -> None:
    client, server = _pair()
    client.open_stream(())
    _pipe(client, server)
    client.send_data(1, b"x" * 40000)
    _pipe(client, server)
    server.acknowledge(1, 40000)
    assert FrameReader().feed(server.data_to_send()) == [WindowUpdate(1, 40000)]
    client.reset_stream(1)
    assert _pipe(client, server) == [RstStream(1, spdy.RstStatus.CANCEL), StreamEnded(1)]


def test_header_block_size_cap() -> None:
    """A header block that inflates past the cap is refused (zip bomb)."""
    huge = _block((b"a", b"x" * (spdy.MAX_HEADER_BLOCK + 10)))
    with pytest.raises(ProtocolError):
        FrameReader().feed(_headers_frame(huge))
