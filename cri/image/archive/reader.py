"""Reading an image archive as it streams in: every file into the content store, once.

An archive is a tar (plain, gzip or zstd: the first bytes say) holding either
docker save's layout (``manifest.json``, ``<config>.json``, layer tars) or
an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``),
or both (docker 25 writes both).  The stream is read once, front to back,
since it may come from a pipe (``dockyard images import -``):

* the layout's own small files (``index.json``, ``manifest.json``,
  ``oci-layout``, ``repositories``) are kept in memory, at most 4 MiB each;
* every other regular file goes into the content store as it streams:
  ``blobs/sha256/<hex>`` under that digest, verified when it is committed
  (a mismatch is an error naming the entry; one the store has already is
  skipped, its copy was verified when written), anything else under the
  digest of its content; which ones are images' blobs is decided afterwards
  (``layout.py``), and the rest is left to garbage collection;
* directories are skipped; symlinks and hard links (docker's legacy layout
  links a layer that two images share) name another entry of the archive
  and resolve to its blob; any other member type, an absolute path or one
  with ``..`` is an error naming the entry.

Committed blobs are held by the caller's lease (the content store's on_use
hook), so a garbage collection running beside an import keeps them; a file
cut short leaves only its ingest temp file, which the writer removes.
Every error is InvalidArgument naming the archive entry (or "archive" for
the stream itself).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from dockyard.cri.errors import InvalidArgument, PullError, shorten
from dockyard.cri.snapshot.tar_stream import (
    DIRECTORY,
    HARDLINK,
    REGULAR,
    SYMLINK,
    TarFormatError,
    TarStream,
)

LAYOUT_FILES = frozenset({"index.json", "manifest.json", "oci-layout", "repositories"})
MAX_LAYOUT_FILE = 4 << 20
MAX_LINK_DEPTH = 16
_BLOB = re.compile(r"blobs/sha256/([0-9a-f]{64})")


class WriterLike(Protocol):
    digest: str

    def write(self, data: bytes | bytearray | memoryview) -> None: ...
    def commit(self) -> str: ...
    def abort(self) -> None: ...


class Readable(Protocol):
    """A byte source (an archive file, or the chunks of an import call)."""

    def read(self, n: int = -1, /) -> bytes: ...


class ContentLike(Protocol):
    def has(self, digest: str) -> bool: ...
    def open_writer(self, digest: str, expected_size: int | None = None) -> WriterLike: ...
    def open_spool(self, expected_size: int | None = None) -> WriterLike: ...


@dataclass(frozen=True, slots=True)
class Blob:
    digest: str
    size: int


@dataclass(slots=True)
class Entries:
    """What an archive held: its files as blobs (by entry name, links resolved) and the
    layout's own files."""

    files: dict[str, Blob] = field(default_factory=dict)
    layout: dict[str, bytes] = field(default_factory=dict)


def entry_name(raw: str) -> str:
    """An archive path as the layout refers to it ("./a//b" is "a/b"); InvalidArgument if it
    is absolute or climbs out with '..'."""
    if raw.startswith("/"):
        raise InvalidArgument(f"archive entry {shorten(raw)!r}: absolute path")
    name = posixpath.normpath(raw)
    if name == ".." or name.startswith("../") or "/../" in f"/{raw}/":
        raise InvalidArgument(f"archive entry {shorten(raw)!r}: path with '..'")
    return "" if name == "." else name


def read_archive(read: Callable[[int], bytes], content: ContentLike) -> Entries:
    """Read the (decompressed) tar stream ``read`` to its end; see the module docstring."""
    entries = Entries()
    links: dict[str, str] = {}
    tar = TarStream(read)
    while True:
        try:
            member = tar.next()
        except TarFormatError as err:
            raise InvalidArgument(f"archive: not a valid tar stream: {err}") from err
        except PullError as err:  # from decompression: corrupt or truncated gzip/zstd
            raise InvalidArgument(err.message) from err
        if member is None:
            break
        name = entry_name(member.name)
        if member.type == DIRECTORY or not name:
            continue
        if name in entries.files or name in entries.layout or name in links:
            raise InvalidArgument(f"archive entry {shorten(name)!r}: appears twice")
        if member.type in (SYMLINK, HARDLINK):
            # A symlink's target is relative to its directory, a hard link's to the archive's root.
            base = posixpath.dirname(name) if member.type == SYMLINK else ""
            target = posixpath.normpath(posixpath.join(base, member.linkname))
            if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
                raise InvalidArgument(f"archive entry {shorten(name)!r}: links out of the archive "
                                      f"({shorten(member.linkname)!r})")
            links[name] = target
            continue
        if member.type != REGULAR:
            raise InvalidArgument(f"archive entry {shorten(name)!r}: unexpected member type {member.type!r}")
        try:
            if name in LAYOUT_FILES:
                if member.size > MAX_LAYOUT_FILE:
                    raise InvalidArgument(f"archive entry {name!r}: larger than {MAX_LAYOUT_FILE} bytes")
                entries.layout[name] = b"".join(bytes(chunk) for chunk in tar.data(member.size))
            else:
                entries.files[name] = _spool(name, member.size, tar, content)
        except TarFormatError as err:
            raise InvalidArgument(f"archive entry {shorten(name)!r}: {err}") from err
        except PullError as err:
            raise InvalidArgument(f"archive entry {shorten(name)!r}: {err.message}") from err
    try:
        while read(1 << 20):  # what follows the end of the archive: a cut-off gzip shows only here
            pass
    except PullError as err:
        raise InvalidArgument(err.message) from err
    for name in links:
        entries.files[name] = _resolve(name, links, entries.files)
    return entries


def _spool(name: str, size: int, tar: TarStream, content: ContentLike) -> Blob:
    match = _BLOB.fullmatch(name)
    if match and content.has(f"sha256:{match.group(1)}"):
        for _ in tar.data(size):  # the store's copy was verified when it was written
            pass
        return Blob(f"sha256:{match.group(1)}", size)
    writer = content.open_writer(f"sha256:{match.group(1)}", size) if match else content.open_spool(size)
    try:
        for chunk in tar.data(size):
            writer.write(chunk)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return Blob(writer.digest, size)


def _resolve(name: str, links: dict[str, str], files: dict[str, Blob]) -> Blob:
    target = links[name]
    for _ in range(MAX_LINK_DEPTH):
        if target in files:
            return files[target]
        if target not in links:
            break
        target = links[target]
    raise InvalidArgument(f"archive entry {shorten(name)!r}: links to {shorten(target)!r}, which is no file in the archive")
