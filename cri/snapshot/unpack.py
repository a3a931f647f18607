"""Apply an OCI layer (tar, tar+gzip, tar+zstd) to a directory with overlay semantics.

``apply_layer`` streams the blob once: decompress -> sha256 of the
uncompressed tar (the layer's diff id) -> tar parser -> file system.  It
returns the diff id; the snapshotter compares it with the image config's
``rootfs.diff_ids``.

Facts the writer relies on:

* Every parent directory is opened with ``openat2(root, parent,
  RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)``.  The
  kernel then refuses (ELOOP/EXDEV) any walk through a symlink or out of the
  destination, so a member cannot write through a link planted by an earlier
  member (``evil -> /etc`` then ``evil/passwd``).  The final component is
  created with ``O_CREAT|O_EXCL|O_NOFOLLOW``/``mkdirat``/``symlinkat``/
  ``mknodat``/``linkat`` relative to the parent fd, none of which follow a
  symlink in the last component; an existing entry is removed first, as tar does.
* Symlink targets are stored verbatim: they are resolved only inside the
  container, never by us.
* Hardlink targets go through the same name checks and the same parent walk,
  and ``linkat`` without AT_SYMLINK_FOLLOW links the entry itself, so a
  hardlink can only point at something already inside the destination.
* ``chown`` clears setuid/setgid bits and drops ``security.capability``, so
  the order per entry is: create, data, chown, chmod, xattrs, times.
* Creating an entry updates its parent directory's mtime, so directory
  times are set after the whole layer is written.
* Overlay whiteouts are character devices 0:0; an opaque directory carries
  ``trusted.overlay.opaque=y``.  Both need CAP_MKNOD/CAP_SYS_ADMIN (root).
* Not running as root (unit tests), ownership is left as it is.
"""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import shutil
import stat
import threading
import zlib
from collections.abc import Callable
from typing import IO, Protocol, cast

import zstandard

from dockyard.runtime.kernel import syscalls
from dockyard.runtime.kernel.errors import SyscallError

from ..errors import CriError, Internal, InvalidArgument, PullError, ResourceExhausted
from . import safe_path, tar_stream
from .safe_path import Kind
from .tar_stream import Member, TarFormatError
from .zstd_frames import FrameWalker

CHUNK = 1 << 20

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# media type -> the compression it declares
LAYER_MEDIA_TYPES: dict[str, str] = {
    "application/vnd.oci.image.layer.v1.tar": "",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}

_RESOLVE = syscalls.RESOLVE_BENEATH | syscalls.RESOLVE_NO_SYMLINKS | syscalls.RESOLVE_NO_MAGICLINKS
_DIR_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_OPAQUE_XATTR = "trusted.overlay.opaque"


def declared_compression(media_type: str, layer: str) -> str:
    """The compression a layer media type declares; PullError(bad_media_type) if unknown."""
    try:
        return LAYER_MEDIA_TYPES[media_type]
    except KeyError:
        raise PullError(f"layer {layer}: unsupported media type {media_type!r}", reason="bad_media_type") from None


def sniff_compression(prefix: bytes) -> str:
    """The compression the first bytes of a blob show: "gzip", "zstd" or "" (plain tar)."""
    if prefix.startswith(GZIP_MAGIC):
        return "gzip"
    if prefix.startswith(ZSTD_MAGIC):
        return "zstd"
    return ""


def choose_compression(media_type: str, prefix: bytes, layer: str) -> str:
    """Media type and magic bytes must agree.

    A blob that says one thing and is another is refused rather than
    guessed at: the diff id the config promises is defined over the
    uncompressed stream, and a mismatch means the registry or the pusher is
    confused.
    """
    declared = declared_compression(media_type, layer)
    actual = sniff_compression(prefix)
    if declared != actual:
        raise PullError(
            f"layer {layer}: media type {media_type!r} declares "
            f"{declared or 'no compression'} but the data is {actual or 'not compressed'}",
            reason="bad_layer",
        )
    return actual


class _LayerStream:
    """Compressed blob in, uncompressed tar chunks out; hashes what it emits.

    The hash covers every uncompressed byte, including what follows the
    tar's end-of-archive blocks (call drain()), because the diff id is the
    digest of the whole uncompressed stream.
    """

    def __init__(self, raw: Readable, compression: str, first: bytes, what: str) -> None:
        self._raw = raw
        self._what = what  # "layer sha256:...", or what else it decompresses, for messages
        self._pending = first
        self._eof = False
        self.hash = hashlib.sha256()
        self.size = 0
        self._read: Callable[[int], bytes]
        if compression == "gzip":
            self._gz = zlib.decompressobj(wbits=31)
            self._read = self._read_gzip
        elif compression == "zstd":
            # zstd can expand its input ~32,000 times (RLE blocks), so its
            # output must be bounded per call: stream_reader's read(n) is, and
            # decodes n bytes in one call with the GIL released (the 8 KiB
            # input slices fed to a decompressobj before took 30 calls per
            # megabyte, each a GIL hand-off the small-file layers waited on).
            # It ends quietly at a frame cut short, so the frames' headers
            # are walked beside it (zstd_frames.py) to catch a truncation.
            self._frames = FrameWalker()
            tap = _Tap(self._raw_chunk, self._frames.feed)
            self._zr = zstandard.ZstdDecompressor().stream_reader(
                cast("IO[bytes]", tap), read_size=CHUNK, read_across_frames=True)  # it only calls read()
            self._read = self._read_zstd
        else:
            self._read = self._read_plain

    def read(self, n: int) -> bytes:
        out = self._read(n)
        if out:
            self.hash.update(out)
            self.size += len(out)
        return out

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def _raw_chunk(self) -> bytes:
        if self._pending:
            chunk, self._pending = self._pending, b""
            return chunk
        if self._eof:
            return b""
        chunk = self._raw.read(CHUNK)
        if not chunk:
            self._eof = True
        return chunk

    def _truncated(self, kind: str) -> PullError:
        return PullError(f"{self._what}: {kind} stream is truncated", reason="bad_layer")

    def _read_plain(self, n: int) -> bytes:
        return self._raw_chunk()

    def _read_gzip(self, n: int) -> bytes:
        d = self._gz
        while True:
            if d.eof:
                rest = d.unused_data or self._raw_chunk()
                if not rest:
                    return b""
                # A gzip stream may hold several members back to back (pigz, concatenation).
                d = self._gz = zlib.decompressobj(wbits=31)
                data = rest
            else:
                data = d.unconsumed_tail or self._raw_chunk()
                if not data:
                    # Input is used up; inflate may still hold output (a match cut
                    # short by max_length).  flush() emits it and tells whether the
                    # member really ended.
                    try:
                        out = d.flush()
                    except zlib.error as err:
                        raise self._truncated("gzip") from err
                    if not d.eof:
                        raise self._truncated("gzip")
                    if out:
                        return out
                    continue
            try:
                out = d.decompress(data, n)
            except zlib.error as err:
                raise PullError(f"{self._what}: corrupt gzip data: {err}", reason="bad_layer") from err
            if d.eof and d.unused_data:
                self._pending = d.unused_data + self._pending
                d = self._gz = zlib.decompressobj(wbits=31)
                # The next member starts from _pending; an empty out loops to read it.
            if out:
                return out

    def _read_zstd(self, n: int) -> bytes:
        try:
            out: bytes = self._zr.read(n)
        except zstandard.ZstdError as err:
            raise PullError(f"{self._what}: corrupt zstd data: {err}", reason="bad_layer") from err
        if not out and not self._frames.ended_cleanly():
            raise self._truncated("zstd")
        return out


class _Tap:
    """The compressed chunks, each shown to ``see`` on its way to the decoder."""

    def __init__(self, chunks: Callable[[], bytes], see: Callable[[bytes], None]) -> None:
        self._chunks = chunks
        self._see = see

    def read(self, n: int = -1, /) -> bytes:
        chunk = self._chunks()
        self._see(chunk)
        return chunk


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def _prefix(fileobj: Readable) -> bytes:
    """The first read of a blob, long enough to sniff its magic bytes (a
    followed download, cri/content/follow.py, may return less at first)."""
    first = fileobj.read(CHUNK)
    while first and len(first) < len(ZSTD_MAGIC):
        more = fileobj.read(CHUNK)
        if not more:
            break
        first += more
    return first


def decompressed(fileobj: Readable, what: str) -> Callable[[int], bytes]:
    """``read(n)`` over ``fileobj`` decompressed as its first bytes say (gzip,
    zstd or none), with the same bounds as layers get; errors name ``what``
    (an image archive uses it)."""
    first = _prefix(fileobj)
    return _LayerStream(fileobj, sniff_compression(first), first, what).read


class _Prefetcher:
    """Runs a _LayerStream in its own thread, handing chunks over a bounded queue.

    zlib, zstd and hashlib release the GIL on large buffers, so decompressing
    and hashing the next megabytes overlaps with parsing and writing the
    current ones: on two cores a gzip layer unpacks in about the time of the
    slower of the two halves instead of their sum.
    """

    _DEPTH = 8  # chunks in flight: bounds memory to ~8 MiB

    def __init__(self, stream: _LayerStream) -> None:
        self._stream = stream
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(self._DEPTH)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._run, name="layer-decompress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._stream.read(CHUNK)
                self._put(chunk)
                if not chunk:
                    return
        except BaseException as err:  # handed to the consumer, which re-raises it
            self._put(err)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self, n: int) -> bytes:
        if self._finished:
            return b""
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._finished = True
            raise item
        if not item:
            self._finished = True
        return item

    def drain(self) -> None:
        """Consume the rest of the stream (the digest covers all of it)."""
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def apply_layer(fileobj: Readable, dest_dir: str, media_type: str, *, layer: str = "layer") -> str:
    """Unpack a layer blob into ``dest_dir``; return its diff id ("sha256:<hex>").

    Errors are CriErrors naming ``layer`` and, for a bad member, the member:
    PullError(reason="bad_media_type"|"bad_layer") for what the layer
    contains, ResourceExhausted for a full disk, Internal for other failures
    on our side.  On error ``dest_dir`` holds a partial result; the
    snapshotter unpacks into a temp dir and deletes it.
    """
    first = _prefix(fileobj)
    compression = choose_compression(media_type, first, layer)
    stream = _LayerStream(fileobj, compression, first, f"layer {layer}")
    prefetch = _Prefetcher(stream)
    try:
        applier = _Applier(dest_dir, layer)
    except BaseException:
        prefetch.close()
        raise
    try:
        tar = tar_stream.TarStream(prefetch.read, CHUNK)
        while True:
            try:
                member = tar.next()
            except TarFormatError as err:
                raise PullError(f"layer {layer}: {err}", reason="bad_layer") from err
            if member is None:
                break
            applier.apply(member, tar)
        prefetch.drain()
        applier.finish()
    finally:
        prefetch.close()
        applier.close()
    return "sha256:" + stream.hash.hexdigest()


class _Applier:
    """Writes members under one destination directory; see the module docstring."""

    def __init__(self, dest_dir: str, layer: str) -> None:
        self.layer = layer
        self.root_fd = os.open(dest_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.as_root = os.geteuid() == 0
        # The most recently used parent directory; members come grouped by directory.
        self._cached_parent = ""
        self._cached_fd = -1
        self._dir_times: list[tuple[str, int, int]] = []
        self._member = ""

    def close(self) -> None:
        self._forget_parent()
        os.close(self.root_fd)

    # -- errors -------------------------------------------------------------

    def _bad(self, detail: str) -> PullError:
        return PullError(f"layer {self.layer}: tar member {self._member!r}: {detail}", reason="bad_layer")

    def _os_failure(self, op: str, err: OSError) -> CriError:
        where = f"layer {self.layer}: tar member {self._member!r}: {op}"
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            return ResourceExhausted(f"{where}: {os.strerror(err.errno)}")
        return Internal(f"{where}: {err.strerror or err}")

    # -- parents --------------------------------------------------------------

    def _forget_parent(self) -> None:
        if self._cached_fd >= 0:
            os.close(self._cached_fd)
        self._cached_fd = -1
        self._cached_parent = ""

    def _open_beneath(self, path: str) -> int:
        """An O_PATH fd of directory ``path`` under the root, never crossing a symlink."""
        try:
            return syscalls.openat2(self.root_fd, path, _DIR_PATH_FLAGS, _RESOLVE)
        except SyscallError as err:
            if err.errno == errno.ENOENT:
                return self._make_parents(path)
            raise self._walk_error(path, err.errno) from err

    def _walk_error(self, path: str, code: int) -> CriError:
        if code == errno.ELOOP:
            return self._bad(f"path {path!r} goes through a symlink")
        if code == errno.EXDEV:
            return self._bad(f"path {path!r} leaves the layer")
        if code == errno.ENOTDIR:
            return self._bad(f"path {path!r} has a non-directory parent")
        return self._os_failure(f"open parent {path!r}", OSError(code, os.strerror(code)))

    def _make_parents(self, path: str) -> int:
        """Create missing parents one component at a time (mode 0755, like docker)."""
        fd = os.dup(self.root_fd)
        try:
            for part in path.split("/"):
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                except OSError as err:
                    raise self._os_failure(f"create parent {path!r}", err) from err
                try:
                    nfd = syscalls.openat2(fd, part, _DIR_PATH_FLAGS, _RESOLVE)
                except SyscallError as err:
                    raise self._walk_error(path, err.errno) from err
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _parent(self, parent: str) -> int:
        if not parent:
            return self.root_fd
        if self._cached_fd >= 0 and parent == self._cached_parent:
            return self._cached_fd
        fd = self._open_beneath(parent)
        self._forget_parent()
        self._cached_parent = parent
        self._cached_fd = fd
        return fd

    # -- removal ------------------------------------------------------------

    def _remove(self, pfd: int, base: str) -> bool:
        """Remove ``base`` in ``pfd`` (recursively, never following links); False if absent."""
        try:
            st = os.lstat(base, dir_fd=pfd)
        except FileNotFoundError:
            return False
        try:
            if stat.S_ISDIR(st.st_mode):
                # A directory might be the cached parent (or hold it); forget it first.
                self._forget_parent_keeping(pfd)
                shutil.rmtree(base, dir_fd=pfd)
            else:
                os.unlink(base, dir_fd=pfd)
        except OSError as err:
            raise self._os_failure(f"remove existing {base!r}", err) from err
        return True

    def _forget_parent_keeping(self, pfd: int) -> None:
        # pfd itself stays valid (it is the parent of what is removed); any other
        # cached directory might lie inside the removed tree.
        if self._cached_fd >= 0 and self._cached_fd != pfd:
            self._forget_parent()

    # -- members ------------------------------------------------------------

    def apply(self, m: Member, tar: tar_stream.TarStream) -> None:
        self._member = m.name
        try:
            target = safe_path.classify(m.name)
        except InvalidArgument as err:
            raise PullError(f"layer {self.layer}: {err.message}", reason="bad_layer") from err
        if target.kind is Kind.SKIP:
            return
        parent, base = safe_path.split(target.path)
        if target.kind is Kind.OPAQUE:
            self._opaque(target.path)
            return
        if not base:
            if m.type != tar_stream.DIRECTORY:
                raise self._bad("the layer root must be a directory")
            self._root_dir(m)
            return
        pfd = self._parent(parent)
        if target.kind is Kind.WHITEOUT:
            self._whiteout(pfd, base, m)
            return
        kind = m.type
        if kind == tar_stream.REGULAR:
            self._regular(pfd, base, m, tar)
        elif kind == tar_stream.DIRECTORY:
            self._directory(pfd, base, target.path, m)
        elif kind == tar_stream.SYMLINK:
            self._symlink(pfd, base, m)
        elif kind == tar_stream.HARDLINK:
            self._hardlink(pfd, base, m)
        else:
            self._special(pfd, base, m)

    def _regular(self, pfd: int, base: str, m: Member, tar: tar_stream.TarStream) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(base, flags, 0o600, dir_fd=pfd)
        except FileExistsError:
            self._remove(pfd, base)
            try:
                fd = os.open(base, flags, 0o600, dir_fd=pfd)
            except OSError as err:
                raise self._os_failure("create file", err) from err
        except OSError as err:
            raise self._os_failure("create file", err) from err
        try:
            try:
                for view in tar.data(m.size):
                    while view:
                        view = view[os.write(fd, view) :]
            except TarFormatError as err:
                raise PullError(f"layer {self.layer}: tar member {m.name!r}: {err}", reason="bad_layer") from err
            self._fd_metadata(fd, m)
        except OSError as err:
            raise self._os_failure("write file", err) from err
        finally:
            os.close(fd)

    def _fd_metadata(self, fd: int, m: Member) -> None:
        if self.as_root:
            os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, m.mode)
        for key, value in m.xattrs.items():
            os.setxattr(fd, key, value)
        os.utime(fd, ns=(m.atime_ns if m.atime_ns is not None else m.mtime_ns, m.mtime_ns))

    def _directory(self, pfd: int, base: str, path: str, m: Member) -> None:
        try:
            os.mkdir(base, 0o700, dir_fd=pfd)
        except FileExistsError:
            st = os.lstat(base, dir_fd=pfd)
            if not stat.S_ISDIR(st.st_mode):
                self._remove(pfd, base)
                try:
                    os.mkdir(base, 0o700, dir_fd=pfd)
                except OSError as err:
                    raise self._os_failure("create directory", err) from err
        except OSError as err:
            raise self._os_failure("create directory", err) from err
        try:
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                if self.as_root:
                    os.fchown(fd, m.uid, m.gid)
                os.fchmod(fd, m.mode)
                for key, value in m.xattrs.items():
                    os.setxattr(fd, key, value)
            finally:
                os.close(fd)
        except OSError as err:
            raise self._os_failure("set directory metadata", err) from err
        self._dir_times.append((path, m.atime_ns if m.atime_ns is not None else m.mtime_ns, m.mtime_ns))

    def _root_dir(self, m: Member) -> None:
        try:
            if self.as_root:
                os.fchown(self.root_fd, m.uid, m.gid)
            os.fchmod(self.root_fd, m.mode)
            for key, value in m.xattrs.items():
                os.setxattr(self.root_fd, key, value)
        except OSError as err:
            raise self._os_failure("set root directory metadata", err) from err
        self._dir_times.append(("", m.atime_ns if m.atime_ns is not None else m.mtime_ns, m.mtime_ns))

    def _create_node(self, pfd: int, base: str, make: Callable[[], None], what: str) -> None:
        try:
            make()
        except FileExistsError:
            self._remove(pfd, base)
            try:
                make()
            except OSError as err:
                raise self._os_failure(f"create {what}", err) from err
        except OSError as err:
            raise self._os_failure(f"create {what}", err) from err

    def _path_metadata(self, pfd: int, base: str, m: Member, chmod: bool) -> None:
        """Metadata of an entry that cannot be opened (symlink, device, fifo, whiteout)."""
        try:
            if self.as_root:
                os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            if chmod:
                # The node was just made by mknodat and is not a symlink.
                os.chmod(base, m.mode, dir_fd=pfd)
            if m.xattrs:
                # No fd-relative lsetxattr: go through the parent's /proc magic link;
                # the last component is still not followed.
                proc_path = f"/proc/self/fd/{pfd}/{base}"
                for key, value in m.xattrs.items():
                    os.setxattr(proc_path, key, value, follow_symlinks=False)
            os.utime(
                base,
                ns=(m.atime_ns if m.atime_ns is not None else m.mtime_ns, m.mtime_ns),
                dir_fd=pfd,
                follow_symlinks=False,
            )
        except OSError as err:
            raise self._os_failure("set metadata", err) from err

    def _symlink(self, pfd: int, base: str, m: Member) -> None:
        self._create_node(pfd, base, lambda: os.symlink(m.linkname, base, dir_fd=pfd), "symlink")
        self._path_metadata(pfd, base, m, chmod=False)

    def _special(self, pfd: int, base: str, m: Member) -> None:
        kinds = {tar_stream.CHAR: stat.S_IFCHR, tar_stream.BLOCK_DEVICE: stat.S_IFBLK, tar_stream.FIFO: stat.S_IFIFO}
        mode = kinds[m.type] | (m.mode & 0o777)
        device = os.makedev(m.devmajor, m.devminor)
        self._create_node(pfd, base, lambda: os.mknod(base, mode, device, dir_fd=pfd), "device node")
        self._path_metadata(pfd, base, m, chmod=True)

    def _hardlink(self, pfd: int, base: str, m: Member) -> None:
        try:
            target = safe_path.relative_path(m.linkname)
        except InvalidArgument as err:
            raise self._bad(f"hardlink target: {err.message}") from err
        tparent, tbase = safe_path.split(target)
        if not tbase:
            raise self._bad("hardlink to the layer root")
        if target == safe_path.relative_path(m.name):
            raise self._bad("hardlink to itself")
        try:
            tfd = syscalls.openat2(self.root_fd, tparent or ".", _DIR_PATH_FLAGS, _RESOLVE)
        except SyscallError as err:
            if err.errno == errno.ENOENT:
                raise self._bad(f"hardlink target {m.linkname!r} is not in the layer") from err
            raise self._walk_error(tparent, err.errno) from err
        try:
            try:
                st = os.lstat(tbase, dir_fd=tfd)
            except FileNotFoundError as err:
                raise self._bad(f"hardlink target {m.linkname!r} is not in the layer") from err
            if stat.S_ISDIR(st.st_mode):
                raise self._bad(f"hardlink target {m.linkname!r} is a directory")
            self._create_node(
                pfd,
                base,
                lambda: os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False),
                "hardlink",
            )
        finally:
            os.close(tfd)

    def _whiteout(self, pfd: int, base: str, m: Member) -> None:
        self._remove(pfd, base)
        self._create_node(pfd, base, lambda: os.mknod(base, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd), "whiteout")
        whiteout = Member(
            name=m.name, type=tar_stream.CHAR, mode=0, uid=m.uid, gid=m.gid, size=0,
            mtime_ns=m.mtime_ns, atime_ns=m.atime_ns,
        )
        self._path_metadata(pfd, base, whiteout, chmod=False)

    def _opaque(self, path: str) -> None:
        fd = self.root_fd if not path else self._parent(path)
        try:
            # fsetxattr does not work on O_PATH fds; the magic link names the directory itself.
            os.setxattr(f"/proc/self/fd/{fd}", _OPAQUE_XATTR, b"y")
        except OSError as err:
            raise self._os_failure("mark directory opaque", err) from err

    # -- end ------------------------------------------------------------------

    def finish(self) -> None:
        """Set directory times now that nothing more is created inside them."""
        self._forget_parent()
        for path, atime, mtime in self._dir_times:
            self._member = path
            if not path:
                try:
                    os.utime(self.root_fd, ns=(atime, mtime))
                except OSError as err:
                    raise self._os_failure("set directory times", err) from err
                continue
            try:
                fd = syscalls.openat2(self.root_fd, path, _DIR_PATH_FLAGS, _RESOLVE)
            except SyscallError as err:
                if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    continue  # a later member removed or replaced it
                raise self._walk_error(path, err.errno) from err
            try:
                # utimensat on an O_PATH fd with AT_EMPTY_PATH is not offered by os;
                # the magic link names the directory itself.
                os.utime(f"/proc/self/fd/{fd}", ns=(atime, mtime))
            except OSError as err:
                raise self._os_failure("set directory times", err) from err
            finally:
                os.close(fd)
