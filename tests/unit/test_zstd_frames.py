"""FrameWalker (cri/snapshot/zstd_frames.py): a zstd stream ends cleanly only
at the end of a frame, whatever the pieces it is fed in."""

from __future__ import annotations

import os
import random
import struct

import pytest
import zstandard

from dockyard.cri.snapshot.zstd_frames import FrameWalker

RANDOM = random.Random(1234)


def skippable(payload: bytes, nibble: int = 0) -> bytes:
    return struct.pack("<II", 0x184D2A50 | nibble, len(payload)) + payload


def frame(data: bytes, level: int = 3, write_checksum: bool = False, write_content_size: bool = True) -> bytes:
    return zstandard.ZstdCompressor(level=level, write_checksum=write_checksum,
                                    write_content_size=write_content_size).compress(data)


TEXT = b"".join(b"line %d of a layer's text\n" % i for i in range(3000))
STREAMS: dict[str, list[bytes]] = {  # name -> its frames (a cut between two frames is a clean end)
    "text, level 3": [frame(TEXT)],
    "text, level 19, checksum": [frame(TEXT, level=19, write_checksum=True)],
    "no content size": [frame(TEXT, write_content_size=False)],
    "random bytes (raw blocks)": [frame(os.urandom(300_000))],
    "zeros (RLE blocks)": [frame(b"\0" * 500_000, write_checksum=True)],
    "empty": [frame(b"")],
    "tiny (single segment)": [frame(b"x")],
    "with a dictionary id": [zstandard.ZstdCompressor(dict_data=zstandard.train_dictionary(
        1024, [TEXT[i : i + 500] for i in range(0, 100_000, 500)])).compress(TEXT[:2000])],
    "three frames": [frame(TEXT[:1000]), frame(os.urandom(5000), write_checksum=True), frame(b"")],
    "skippable frames between": [skippable(b"meta"), frame(TEXT[:5000]), skippable(b"", 0xF), frame(b"tail")],
}


def walk(data: bytes, pieces: int = 1) -> bool:
    walker = FrameWalker()
    cuts = sorted(RANDOM.sample(range(1, len(data)), min(pieces - 1, len(data) - 1))) if len(data) > 1 else []
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        walker.feed(data[start:end])
    return walker.ended_cleanly()


@pytest.mark.parametrize("name", list(STREAMS))
def test_a_whole_stream_ends_cleanly_in_any_pieces(name: str) -> None:
    data = b"".join(STREAMS[name])
    for pieces in (1, 2, 7, 100):
        assert walk(data, pieces), pieces


@pytest.mark.parametrize("name", list(STREAMS))
def test_every_cut_inside_a_frame_is_caught(name: str) -> None:
    frames = STREAMS[name]
    data = b"".join(frames)
    boundaries, at = set(), 0
    for f in frames:
        at += len(f)
        boundaries.add(at)
    has_zstd_frame_before = [any(f[:4] == b"\x28\xb5\x2f\xfd" for f in frames[: i + 1]) for i in range(len(frames))]
    step = max(1, len(data) // 3000)  # every byte of the small streams, a sample of the big ones
    for cut in range(0, len(data), step):
        expected = cut in boundaries and has_zstd_frame_before[sorted(boundaries).index(cut)]
        assert walk(data[:cut], 3) == expected, cut


@pytest.mark.parametrize("data", [b"", b"\x28\xb5\x2f", skippable(b"only metadata")])
def test_no_whole_zstd_frame_is_not_a_clean_end(data: bytes) -> None:
    assert not walk(data)


@pytest.mark.parametrize("data", [b"not zstd at all", frame(TEXT) + b"garbage!"])
def test_bytes_that_are_not_zstd_are_left_to_the_decoder(data: bytes) -> None:
    """The walker stops judging; the decoder raises for these."""
    assert walk(data)
    with pytest.raises(zstandard.ZstdError):
        reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
        while reader.read(1 << 16):
            pass
