"""Reading a blob while it is still being written into the content store.

A pull unpacks a layer as its bytes arrive instead of after the whole blob
is in (cri/server/layer_unpack.py): the unpacking thread reads the ingest
file behind the writer on the event loop.  The file itself is the buffer
(the page cache), so a slow unpack never holds the download back, and a
fast one waits for the next write.

The two sides share a ``Progress``: the writer says how many bytes are in
the file after each write, and how the blob ended: committed (its size and
digest verified) or aborted.  A reader returns end-of-file only once the
blob is committed, and raises ``SourceAborted`` if it was aborted, so what
it read can never pass for a verified blob.  The reader holds its own fd,
opened before the first write, so the commit's rename and the abort's
unlink do not pull the file from under it.
"""

from __future__ import annotations

import os
import threading

from ..errors import Internal


class SourceAborted(Internal):
    """The blob being followed was aborted (its download failed or was retried)."""


class Progress:
    """How far a blob's writer has got (any thread writes, any thread waits)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._size = 0
        self._ended: bool | None = None  # None while writing; True committed; False aborted

    def advanced(self, size: int) -> None:
        with self._cond:
            self._size = size
            self._cond.notify_all()

    def ended(self, committed: bool) -> None:
        with self._cond:
            if self._ended is None:
                self._ended = committed
            self._cond.notify_all()

    def wait_past(self, position: int) -> tuple[int, bool | None]:
        """Block until more than ``position`` bytes are written or the blob
        ended; the size written and how it ended (None: not yet)."""
        with self._cond:
            while self._size <= position and self._ended is None:
                self._cond.wait()
            return self._size, self._ended


class FollowingReader:
    """``read(n)`` over a blob as its writer writes it; see the module docstring."""

    def __init__(self, path: str, progress: Progress, what: str) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._progress = progress
        self._what = what
        self._position = 0

    def read(self, n: int = -1, /) -> bytes:
        while True:
            size, ended = self._progress.wait_past(self._position)
            if ended is False:
                raise SourceAborted(f"{self._what}: its download was abandoned")
            if size > self._position:
                data = os.pread(self._fd, min(n if n > 0 else size, size - self._position), self._position)
                if not data:  # the writer said the bytes are there
                    raise Internal(f"{self._what}: the ingest file is shorter than its writer says")
                self._position += len(data)
                return data
            if ended:
                return b""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FollowingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
