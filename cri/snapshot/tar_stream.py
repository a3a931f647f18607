"""A pull parser for the tar streams of image layers; no file-system I/O.

Why not ``tarfile``: in stream mode (``r|``) it re-slices its whole read
buffer on every header read, so its cost per member grows with the buffer
size, and it cannot hand file data over without copying it twice.  Layers
are mostly many small files plus a few big ones; this parser keeps one buffer
with an offset, parses a header in a few slices, and passes file data through
as memoryviews of the chunks it was given.

Formats understood (what docker, buildkit, umoci and Go's archive/tar emit):

* ustar / POSIX headers, the ``prefix`` field joined to ``name``;
* GNU ``L``/``K`` long name and long link records, GNU base-256 numbers;
* PAX ``x`` records (path, linkpath, size, uid, gid, mtime, atime,
  ``SCHILY.xattr.*``); PAX ``g`` global records are read and ignored;
* types regular (``0``, NUL, ``7``), hardlink, symlink, char, block, dir, fifo.

GNU and PAX sparse files and any other type are refused: a layer we cannot
reproduce exactly is better rejected than unpacked wrongly.  Every error is a
:class:`TarFormatError` with a message; the unpacker names the layer.

The end of the archive is the first all-zero header block.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

BLOCK = 512

REGULAR = "0"
HARDLINK = "1"
SYMLINK = "2"
CHAR = "3"
BLOCK_DEVICE = "4"
DIRECTORY = "5"
FIFO = "6"

_REGULAR_ALIASES = {"0": REGULAR, "\0": REGULAR, "7": REGULAR}
_TYPES = {HARDLINK, SYMLINK, CHAR, BLOCK_DEVICE, DIRECTORY, FIFO}
_ZERO_BLOCK = bytes(BLOCK)
_XATTR_PREFIX = "SCHILY.xattr."


class TarFormatError(Exception):
    """The stream is not a tar archive this parser accepts."""


@dataclass(slots=True)
class Member:
    """One tar header, after PAX and GNU long-name records were applied.

    ``name`` and ``linkname`` are decoded with the file-system encoding and
    surrogateescape, so ``os`` functions turn them back into the exact bytes.
    """

    name: str
    type: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    atime_ns: int | None = None
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


def parse_number(raw: bytes, what: str) -> int:
    """A header number: octal ASCII (NUL/space padded) or GNU base-256."""
    if raw and raw[0] & 0x80:
        # GNU base-256: 0x80 marks a positive big-endian number, 0xff a negative
        # two's-complement one (used for uids, sizes and times that overflow octal).
        if raw[0] == 0xFF:
            return int.from_bytes(raw, "big", signed=True)
        return int.from_bytes(bytes([raw[0] & 0x7F]) + raw[1:], "big")
    text = raw.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError as err:
        raise TarFormatError(f"bad {what} field {raw!r} in tar header") from err


def _string(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


def checksum_ok(block: bytes) -> bool:
    """The header checksum: the sum of its bytes with the checksum field read as spaces."""
    stored = parse_number(block[148:156], "checksum")
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if stored == unsigned:
        return True
    # Some old tars summed signed chars.
    signed = unsigned - 256 * sum(1 for b in block[:148] + block[156:] if b >= 128)
    return stored == signed


def parse_pax(data: bytes) -> dict[str, str]:
    """PAX records "<len> <key>=<value>\\n"; values decoded utf-8 with surrogateescape."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:
            break
        space = data.find(b" ", pos)
        if space < 0:
            raise TarFormatError("bad PAX record: no length")
        try:
            length = int(data[pos:space])
        except ValueError as err:
            raise TarFormatError(f"bad PAX record length {data[pos:space]!r}") from err
        end = pos + length
        if length <= 0 or end > len(data) or data[end - 1 : end] != b"\n":
            raise TarFormatError("bad PAX record: length does not match")
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq:
            raise TarFormatError(f"bad PAX record {key!r}: no '='")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos = end
    return records


def parse_pax_time(value: str) -> int:
    """A PAX time ("1700000000.123456789", possibly negative) in nanoseconds."""
    whole, _, frac = value.partition(".")
    try:
        seconds = int(whole)
        nanos = int((frac + "000000000")[:9]) if frac else 0
    except ValueError as err:
        raise TarFormatError(f"bad PAX time {value!r}") from err
    if whole.startswith("-"):
        return seconds * 1_000_000_000 - nanos
    return seconds * 1_000_000_000 + nanos


def _pax_int(pax: dict[str, str], key: str) -> int:
    try:
        return int(pax[key])
    except ValueError as err:
        raise TarFormatError(f"bad PAX {key} {pax[key]!r}") from err


def _padding(size: int) -> int:
    return -size % BLOCK


class TarStream:
    """Iterate the members of a tar stream read through ``read(n) -> bytes``.

    After :meth:`next` returns a member with data, the caller must consume
    its data with :meth:`data` (or let the next call to :meth:`next` skip
    it).  ``read`` may return any amount up to ``n``; ``b""`` means end of stream.
    """

    def __init__(self, read: Callable[[int], bytes], chunk: int = 1 << 20) -> None:
        self._read = read
        self._chunk = chunk
        self._buf = b""
        self._pos = 0
        self._unread_data = 0  # data + padding of the current member not yet consumed
        self._done = False

    # -- buffer -----------------------------------------------------------

    def _fill(self, need: int) -> bool:
        """Make ``need`` bytes available at _pos; False at a clean end of stream."""
        avail = len(self._buf) - self._pos
        if avail >= need:
            return True
        parts = [self._buf[self._pos :]]
        while avail < need:
            chunk = self._read(self._chunk)
            if not chunk:
                self._buf = b"".join(parts)
                self._pos = 0
                return False
            parts.append(chunk)
            avail += len(chunk)
        self._buf = b"".join(parts)
        self._pos = 0
        return True

    def _take(self, n: int, what: str) -> bytes:
        if not self._fill(n):
            raise TarFormatError(f"tar stream ends inside {what}")
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out

    def _skip(self, n: int) -> None:
        while n:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill(1):
                    raise TarFormatError("tar stream ends inside member data")
                continue
            step = min(avail, n)
            self._pos += step
            n -= step

    # -- members ------------------------------------------------------------

    def data(self, size: int) -> Iterator[memoryview]:
        """Yield the current member's ``size`` data bytes as views, then skip its padding."""
        remaining = size
        while remaining:
            avail = len(self._buf) - self._pos
            if avail == 0:
                chunk = self._read(self._chunk)
                if not chunk:
                    raise TarFormatError("tar stream ends inside member data")
                self._buf = chunk
                self._pos = 0
                avail = len(chunk)
            step = min(avail, remaining)
            yield memoryview(self._buf)[self._pos : self._pos + step]
            self._pos += step
            remaining -= step
            self._unread_data -= step
        pad = self._unread_data
        self._unread_data = 0
        self._skip(pad)

    def next(self) -> Member | None:
        """The next member, or None at the end-of-archive marker."""
        if self._done:
            return None
        if self._unread_data:
            pending = self._unread_data
            self._unread_data = 0
            self._skip(pending)
        pax: dict[str, str] = {}
        long_name: bytes | None = None
        long_link: bytes | None = None
        while True:
            if not self._fill(BLOCK):
                if len(self._buf) - self._pos == 0 and not (pax or long_name or long_link):
                    # No end-of-archive blocks at all; Go's archive/tar accepts that too.
                    self._done = True
                    return None
                raise TarFormatError("tar stream ends inside a header")
            block = self._buf[self._pos : self._pos + BLOCK]
            self._pos += BLOCK
            if block == _ZERO_BLOCK:
                if pax or long_name or long_link:
                    raise TarFormatError("end of archive right after an extended header")
                self._done = True
                return None
            if not checksum_ok(block):
                raise TarFormatError("bad tar header checksum (not a tar stream, or corrupt)")
            typeflag = chr(block[156]) if block[156] else "\0"
            size = parse_number(block[124:136], "size")
            if size < 0:
                raise TarFormatError("negative size in tar header")
            if typeflag in ("x", "g"):
                records = parse_pax(self._take(size + _padding(size), "a PAX header")[:size])
                if typeflag == "x":
                    pax.update(records)
                continue
            if typeflag in ("L", "K"):
                value = _string(self._take(size + _padding(size), "a GNU long name")[:size])
                if typeflag == "L":
                    long_name = value
                else:
                    long_link = value
                continue
            return self._member(block, typeflag, size, pax, long_name, long_link)

    def _member(
        self,
        block: bytes,
        typeflag: str,
        size: int,
        pax: dict[str, str],
        long_name: bytes | None,
        long_link: bytes | None,
    ) -> Member:
        if typeflag in _REGULAR_ALIASES:
            kind = REGULAR
        elif typeflag in _TYPES:
            kind = typeflag
        elif typeflag == "S":
            raise TarFormatError("GNU sparse tar members are not supported")
        else:
            raise TarFormatError(f"unsupported tar member type {typeflag!r}")
        if any(key.startswith("GNU.sparse.") for key in pax):
            raise TarFormatError("PAX sparse tar members are not supported")

        if "path" in pax:
            name = pax["path"]
        elif long_name is not None:
            name = os.fsdecode(long_name)
        else:
            raw = _string(block[0:100])
            if block[257:263] == b"ustar\x00":
                prefix = _string(block[345:500])
                if prefix:
                    raw = prefix + b"/" + raw
            name = os.fsdecode(raw)
        if "linkpath" in pax:
            linkname = pax["linkpath"]
        elif long_link is not None:
            linkname = os.fsdecode(long_link)
        else:
            linkname = os.fsdecode(_string(block[157:257]))

        if "size" in pax:
            size = _pax_int(pax, "size")
        if kind == REGULAR and name.endswith("/"):
            kind = DIRECTORY  # pre-POSIX tars mark directories only by the slash
        if kind == DIRECTORY:
            name = name.rstrip("/") or "/"
        # Only regular files carry data; the size field of the header-only types
        # is ignored, as Go's archive/tar does.
        data_size = size if kind == REGULAR else 0

        mtime_ns = parse_number(block[136:148], "mtime") * 1_000_000_000
        if "mtime" in pax:
            mtime_ns = parse_pax_time(pax["mtime"])
        atime_ns = parse_pax_time(pax["atime"]) if "atime" in pax else None
        uid = _pax_int(pax, "uid") if "uid" in pax else parse_number(block[108:116], "uid")
        gid = _pax_int(pax, "gid") if "gid" in pax else parse_number(block[116:124], "gid")
        xattrs = {
            key[len(_XATTR_PREFIX) :]: value.encode("utf-8", "surrogateescape")
            for key, value in pax.items()
            if key.startswith(_XATTR_PREFIX)
        }
        member = Member(
            name=name,
            type=kind,
            mode=parse_number(block[100:108], "mode") & 0o7777,
            uid=uid,
            gid=gid,
            size=data_size,
            mtime_ns=mtime_ns,
            atime_ns=atime_ns,
            linkname=linkname,
            devmajor=parse_number(block[329:337], "devmajor") if kind in (CHAR, BLOCK_DEVICE) else 0,
            devminor=parse_number(block[337:345], "devminor") if kind in (CHAR, BLOCK_DEVICE) else 0,
            xattrs=xattrs,
        )
        self._unread_data = data_size + _padding(data_size)
        return member
