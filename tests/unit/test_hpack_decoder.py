"""cri/grpc_server/hpack_decoder.py against the hpack library, the reference:
every block the library's encoder makes decodes to the same fields with
both decoders, block after block, so the dynamic tables stay in step."""

from __future__ import annotations

import random

import hpack
import pytest
from hpack.table import HeaderTable

from dockyard.cri.grpc_server.hpack_decoder import STATIC_TABLE, Decoder, HeaderBlockError

GRPC_GO_CALL = [(":method", "POST"), (":scheme", "http"), (":path", "/runtime.v1.RuntimeService/ContainerStatus"),
                (":authority", "localhost"), ("content-type", "application/grpc"),
                ("user-agent", "grpc-go/1.72.0"), ("te", "trailers")]


def reference(block: bytes, decoder: hpack.Decoder) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in decoder.decode(block, raw=True):
        key, text = name.decode("latin-1"), value.decode("latin-1")
        fields[key] = f"{fields[key]}, {text}" if key in fields else text
    return fields


def test_static_table_is_the_rfcs() -> None:
    """The static table is RFC 7541 Appendix A, as the library has it."""
    assert tuple((n.decode(), v.decode()) for n, v in HeaderTable.STATIC_TABLE) == STATIC_TABLE


@pytest.mark.parametrize("huffman", [True, False], ids=["huffman", "plain"])
@pytest.mark.parametrize("table_size", [4096, 256, 0], ids=["table-4096", "table-256", "table-0"])
def test_blocks_decode_as_the_library_decodes_them(huffman: bool, table_size: int) -> None:
    """A stream of blocks like a gRPC client's (fixed fields, a deadline that
    changes every call, metadata that comes and goes, sensitive fields never
    indexed) decodes the same with both decoders, with entries evicted as the
    table fills, and after the encoder changes its table size."""
    rng = random.Random(table_size * 2 + huffman)
    encoder = hpack.Encoder()
    ours, theirs = Decoder(), hpack.Decoder()
    for call in range(400):
        if call == 5:
            encoder.header_table_size = table_size  # sent as a size update in the next block
        fields: list[tuple[str, str] | hpack.NeverIndexedHeaderTuple] = list(GRPC_GO_CALL)
        fields.append(("grpc-timeout", f"{rng.randrange(1, 10**8)}u"))
        for _ in range(rng.randrange(4)):
            fields.append((f"x-meta-{rng.randrange(20)}", "v" * rng.randrange(300)))
        if rng.random() < 0.2:
            fields.append(hpack.NeverIndexedHeaderTuple("authorization", f"Bearer {rng.random()}"))
        block = encoder.encode(fields, huffman=huffman)
        assert ours.decode(block) == reference(block, theirs), f"block {call}: {block!r}"


def test_repeated_names_are_joined() -> None:
    """A name given twice in one block keeps both values, joined by ", "."""
    block = hpack.Encoder().encode([("x-a", "1"), ("x-a", "2"), ("x-b", "3")])
    assert Decoder().decode(block) == {"x-a": "1, 2", "x-b": "3"}


def test_octets_outside_ascii_survive() -> None:
    """Values are octets: every byte value decodes to the latin-1 character of it."""
    value = bytes(range(256))
    block = hpack.Encoder().encode([(b"x-bin", value)])
    assert Decoder().decode(block)["x-bin"].encode("latin-1") == value


@pytest.mark.parametrize("block, says", [
    pytest.param(b"\xbf", "neither table", id="index-past-both-tables"),
    pytest.param(b"\x80", "neither table", id="index-zero"),
    pytest.param(b"\x40\x05ab", "past the end", id="string-past-end"),
    pytest.param(b"\x40", "middle of a field", id="literal-without-name"),
    pytest.param(b"\xff", "middle of a field", id="integer-cut-short"),
    pytest.param(b"\xff\xff\xff\xff\xff\xff\x01", "longer than 4", id="integer-too-long"),
    pytest.param(b"\x3f\xe2\x1f", "to 4097, over 4096", id="size-update-over-limit"),
    pytest.param(b"\x82\x20", "after the first field", id="size-update-after-a-field"),
    pytest.param(b"\x00\x81\xff\x01a", "Huffman", id="huffman-eos-padding"),
])
def test_bad_blocks(block: bytes, says: str) -> None:
    """A block that does not decode is a HeaderBlockError naming what is wrong."""
    with pytest.raises(HeaderBlockError, match=says):
        Decoder().decode(block)


def test_header_list_limit() -> None:
    """A block whose fields add up past the list limit is refused."""
    block = hpack.Encoder().encode([("x-big", "v" * 2000)])
    with pytest.raises(HeaderBlockError, match="header list over 1024"):
        Decoder(max_list_size=1024).decode(block)


def test_entry_bigger_than_the_table_empties_it() -> None:
    """Adding an entry bigger than the whole table leaves the table empty
    (RFC 7541 4.4): a later index into it is an error."""
    decoder = Decoder(max_table_size=100)
    first = b"\x40" + b"\x03x-a" + b"\x01a"  # literal with indexing, 36 bytes
    assert decoder.decode(first) == {"x-a": "a"}
    assert decoder.decode(b"\xbe") == {"x-a": "a"}  # index 62, the dynamic table's first
    big = b"\x40" + b"\x03x-b" + b"\x7f\x01" + b"b" * 128  # 163 bytes: over the table
    assert decoder.decode(big) == {"x-b": "b" * 128}
    with pytest.raises(HeaderBlockError):
        decoder.decode(b"\xbe")
