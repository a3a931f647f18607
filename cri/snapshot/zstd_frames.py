"""Where a zstd stream's frames end, from their headers alone (RFC 8878).

Layers decompress through zstandard's ``stream_reader``, which bounds each
read's output (a hostile layer can expand ~32,000 times) and decodes a
megabyte per call, with the GIL released, instead of one call per 8 KiB
slice.  But that reader ends quietly when its input runs out in the middle
of a frame.  This walker reads the same compressed bytes and tells whether
the stream stopped exactly at the end of a frame; a stream that did not is
truncated.

Facts about the format it relies on (RFC 8878, section 3.1):

* A frame is a 4-byte magic number 0xFD2FB528, a frame header, blocks,
  and an optional 4-byte checksum.  A skippable frame is a magic number
  0x184D2A50-0x184D2A5F and a 4-byte size, then that many bytes.  Numbers
  are little-endian.
* The header's first byte (descriptor) gives: bits 7-6 the content-size
  field's size (0, 2, 4 or 8 bytes; 0 means 1 byte for a single-segment
  frame), bit 5 single segment (no window byte follows), bit 2 a checksum
  after the last block, bits 1-0 the dictionary id's size (0, 1, 2, 4).
* Each block starts with 3 bytes: bit 0 last block, bits 2-1 the type (0
  raw, 1 RLE, 2 compressed, 3 reserved), bits 23-3 the size.  A raw or
  compressed block's content is that many bytes; an RLE block's is 1 byte.

Only the framing is checked here: the decoder finds anything else wrong.
"""

from __future__ import annotations

ZSTD_MAGIC = 0xFD2FB528
SKIPPABLE_MASK = 0xFFFFFFF0
SKIPPABLE_MAGIC = 0x184D2A50

_FCS_SIZES = (0, 2, 4, 8)
_DICT_ID_SIZES = (0, 1, 2, 4)

# What the walker waits for next.
_MAGIC, _SKIP_SIZE, _DESCRIPTOR, _BLOCK, _BAD = range(5)


class FrameWalker:
    """Feed it a zstd stream's bytes in any pieces; ``ended_cleanly()`` at the end."""

    def __init__(self) -> None:
        self._state = _MAGIC
        self._want = 4  # header bytes the state needs
        self._header = b""
        self._skip = 0  # bytes to pass over before the next header
        self._checksum = False  # the current frame ends in a 4-byte checksum
        self._seen_frame = False

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end and self._state != _BAD:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            take = min(self._want - len(self._header), end - pos)
            self._header += data[pos : pos + take]
            pos += take
            if len(self._header) == self._want:
                header, self._header = self._header, b""
                self._advance(header)

    def _advance(self, header: bytes) -> None:
        value = int.from_bytes(header, "little")
        if self._state == _MAGIC:
            if value == ZSTD_MAGIC:
                self._state, self._want = _DESCRIPTOR, 1
                self._seen_frame = True
            elif value & SKIPPABLE_MASK == SKIPPABLE_MAGIC:
                self._state, self._want = _SKIP_SIZE, 4
            else:
                self._state = _BAD  # not zstd: the decoder says so
        elif self._state == _SKIP_SIZE:
            self._state, self._want, self._skip = _MAGIC, 4, value
        elif self._state == _DESCRIPTOR:
            single_segment = bool(value & 0x20)
            fcs = _FCS_SIZES[value >> 6] or (1 if single_segment else 0)
            self._checksum = bool(value & 0x04)
            self._skip = (0 if single_segment else 1) + _DICT_ID_SIZES[value & 0x03] + fcs
            self._state, self._want = _BLOCK, 3
        elif self._state == _BLOCK:
            last, kind, size = value & 1, (value >> 1) & 3, value >> 3
            if kind == 3:
                self._state = _BAD
                return
            self._skip = 1 if kind == 1 else size
            if last:
                self._skip += 4 if self._checksum else 0
                self._state, self._want = _MAGIC, 4

    def ended_cleanly(self) -> bool:
        """Whether the bytes fed so far end exactly after a frame (and hold at least one)."""
        if self._state == _BAD:
            return True  # the decoder has reported what is wrong
        return self._state == _MAGIC and not self._header and not self._skip and self._seen_frame
