"""The content store: blobs (manifests, configs, layers) addressed by digest.

Layout under the store's root::

    blobs/sha256/<hex>     committed blobs, read-only, never partial
    ingest/<random>        blobs being written

A blob reaches ``blobs/`` only through :meth:`BlobWriter.commit`, which checks
the streamed sha256 and size, fsyncs the file, renames it into place (atomic
within one filesystem, which ingest/ and blobs/ share) and fsyncs the
directory.  So after a crash at any point -- even ``kill -9`` mid-write -- a
digest's name either is absent or holds the full, verified content; the
leftover lives in ``ingest/`` and :meth:`ContentStore.clean_temporary`
removes it at startup.

Two writers of the same digest each get their own ingest file; both renames
succeed and the name ends up holding identical bytes, so the store needs no
lock.  Deduplicating the *download* is the puller's business.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
from collections.abc import Callable
from types import TracebackType
from typing import BinaryIO

from ..disk_usage import tree_usage
from ..errors import Internal, NotFound, PullError, ResourceExhausted
from .digest import ALGORITHM, digest_hex, is_digest
from .durable import fsync_dir
from .follow import FollowingReader, Progress

_BUFFER = 1 << 20


def _os_error(op: str, target: str, err: OSError) -> Exception:
    """Map an OSError on our own disk to a domain error (the caller raises it from err)."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceExhausted(f"{op} {target}: {os.strerror(err.errno)}")
    return Internal(f"{op} {target}: {err.strerror or err}")


class BlobWriter:
    """One blob being written into ``ingest/``; commit() moves it under its digest.

    Used as a context manager it aborts (deletes the temp file) unless
    commit() succeeded, so an exception or cancellation keeps nothing.
    Without an expected digest (``ContentStore.open_spool``) the blob is
    committed under the digest of what was written.
    """

    def __init__(self, store: ContentStore, digest: str | None, expected_size: int | None) -> None:
        self.digest = digest or "(digest computed at commit)"
        self.expected_size = expected_size
        self._hex = digest_hex(digest) if digest is not None else None
        self._store = store
        self._hash = hashlib.sha256()
        self._written = 0
        self._done = False
        self.temp_path = os.path.join(store.ingest_dir, secrets.token_hex(16))
        try:
            fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise _os_error("create ingest file for", self.digest, err) from err
        self._file: BinaryIO = open(fd, "wb", buffering=_BUFFER)
        self._progress: Progress | None = None

    def follow(self, what: str) -> FollowingReader:
        """A reader of this blob as it is written (cri/content/follow.py); it
        reaches end-of-file only once the blob is committed."""
        if self._done:
            raise Internal(f"follow of blob {self.digest} after commit or abort")
        if self._progress is None:
            self._progress = Progress()
            self._file.flush()
            self._progress.advanced(self._written)
        return FollowingReader(self.temp_path, self._progress, what)

    @property
    def written(self) -> int:
        """Bytes written so far (for progress reporting)."""
        return self._written

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``; fails early once more than expected_size bytes arrive."""
        if self._done:
            raise Internal(f"write to blob {self.digest} after commit or abort")
        n = len(data)
        if self.expected_size is not None and self._written + n > self.expected_size:
            self.abort()
            raise PullError(
                f"blob {self.digest}: more than the expected {self.expected_size} bytes arrived",
                reason="digest_mismatch",
            )
        self._hash.update(data)
        try:
            self._file.write(data)
        except OSError as err:
            self.abort()
            raise _os_error("write blob", self.digest, err) from err
        self._written += n
        if self._progress is not None:
            try:
                self._file.flush()  # followers read the file, not this buffer
            except OSError as err:
                self.abort()
                raise _os_error("write blob", self.digest, err) from err
            self._progress.advanced(self._written)

    def commit(self) -> str:
        """Verify size and sha256, make the data durable and publish it; return the blob path."""
        if self._done:
            raise Internal(f"commit of blob {self.digest} after commit or abort")
        if self.expected_size is not None and self._written != self.expected_size:
            self.abort()
            raise PullError(
                f"blob {self.digest}: got {self._written} bytes, expected {self.expected_size}",
                reason="digest_mismatch",
            )
        actual = self._hash.hexdigest()
        if self._hex is None:
            self.digest = f"{ALGORITHM}:{actual}"
            self._store.used(self.digest)  # a lease holds it before it is visible
        elif actual != self._hex:
            self.abort()
            raise PullError(
                f"blob {self.digest}: content has digest {ALGORITHM}:{actual}",
                reason="digest_mismatch",
            )
        final = self._store.path(self.digest)
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.rename(self.temp_path, final)
            fsync_dir(self._store.blob_dir)
        except OSError as err:
            self.abort()
            raise _os_error("commit blob", self.digest, err) from err
        self._done = True
        if self._progress is not None:
            self._progress.ended(committed=True)
        return final

    def abort(self) -> None:
        """Drop the temp file; idempotent."""
        if self._done:
            return
        self._done = True
        if self._progress is not None:
            self._progress.ended(committed=False)
        try:
            self._file.close()
        except OSError:
            # The data is being thrown away; a failed flush of it changes nothing.
            pass
        try:
            os.unlink(self.temp_path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()


class ContentStore:
    """Blobs by sha256 digest under ``root``; see the module docstring for the layout.

    ``on_use`` is called with a digest before ``has``, ``open_writer`` and
    ``put`` act on it: the image service's leases (cri/image/leases.py) hold
    every blob a pull looks up or writes, so that garbage collection running
    beside the pull keeps it."""

    def __init__(self, root: str, *, on_use: Callable[[str], None] | None = None) -> None:
        self.root = root
        self._on_use = on_use
        self.blob_dir = os.path.join(root, "blobs", ALGORITHM)
        self.ingest_dir = os.path.join(root, "ingest")
        os.makedirs(self.blob_dir, mode=0o700, exist_ok=True)
        os.makedirs(self.ingest_dir, mode=0o700, exist_ok=True)

    def path(self, digest: str) -> str:
        """Where the blob lives (whether or not it is present)."""
        return os.path.join(self.blob_dir, digest_hex(digest))

    def used(self, digest: str) -> None:
        """Tell the on_use hook that ``digest`` is about to be looked up or written."""
        if self._on_use is not None:
            self._on_use(digest)

    def has(self, digest: str) -> bool:
        self.used(digest)
        return os.path.exists(self.path(digest))

    def size(self, digest: str) -> int:
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError as err:
            raise NotFound(f"blob {digest} not found in the content store") from err

    def open_writer(self, digest: str, expected_size: int | None = None) -> BlobWriter:
        """Start writing a blob; InvalidArgument if ``digest`` is not a sha256 digest."""
        self.used(digest)
        return BlobWriter(self, digest, expected_size)

    def open_spool(self, expected_size: int | None = None) -> BlobWriter:
        """Start writing a blob whose digest is not known yet: commit() names it
        after its content and returns its path (``writer.digest`` is then set)."""
        return BlobWriter(self, None, expected_size)

    def put(self, digest: str, data: bytes) -> str:
        """Write a whole in-memory blob (manifests, configs); return its path."""
        with self.open_writer(digest, len(data)) as writer:
            writer.write(data)
            return writer.commit()

    def read(self, digest: str) -> bytes:
        try:
            with open(self.path(digest), "rb") as f:
                return f.read()
        except FileNotFoundError as err:
            raise NotFound(f"blob {digest} not found in the content store") from err

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError as err:
            raise NotFound(f"blob {digest} not found in the content store") from err

    def digests(self) -> set[str]:
        """Every committed blob's digest (names that are not digests are ignored)."""
        return {
            f"{ALGORITHM}:{name}" for name in os.listdir(self.blob_dir) if is_digest(f"{ALGORITHM}:{name}")
        }

    def clean_temporary(self) -> int:
        """Remove every ingest leftover; call at startup, before any writer exists."""
        removed = 0
        for name in os.listdir(self.ingest_dir):
            try:
                os.unlink(os.path.join(self.ingest_dir, name))
            except FileNotFoundError:
                continue
            removed += 1
        return removed

    def usage(self) -> tuple[int, int]:
        """(bytes allocated on disk, inodes) of everything under the store's root, as
        ImageFsInfo reports them; blobs and ingest files that vanish while it
        counts (garbage collection, a finished write) are not counted."""
        return tree_usage(self.root)
