"""Leases: what pulls and imports in flight hold, so garbage collection can run beside them.

containerd's model, made small.  A pull (or an archive import) holds a lease
from before its first lookup until its image record is stored: a set of
blob digests and snapshot chain ids it has looked up, written or is about
to unpack.  Garbage collection deletes a blob or a committed snapshot only
when, at that moment, no image record references it and no lease holds it.

Why not simply keep GC and pulls apart: on a loaded node pulls overlap all
the time, and a GC that waits for a moment with no pull never runs, so
RemoveImage frees nothing (kubelet's image GC then removes more images,
still freeing nothing).  With leases, RemoveImage runs its GC at once and
answers when the disk space is free.

The one rule that makes it safe: a name is put into a lease (``hold``) and
GC makes its last decision about that name under one lock, and a pull holds
a name *before* it asks whether the blob or snapshot exists.  So either GC
deleted it first (and the pull, not finding it, downloads or unpacks it
again) or the pull holds it (and GC keeps it).  GC looks at the image
records under the same lock, and a lease ends only after its record is
stored, so nothing is ever between "unreferenced" and "held".

The lease of the running pull is found through a context variable: the
pull's task sets it, and the tasks and threads it starts (downloads,
``asyncio.to_thread``) copy their context from it, so the content store's
hook (``ContentStore(on_use=leases.hold)``) adds to the right lease from
wherever the puller touches a blob.  Outside any lease, ``hold`` does nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar

_current: ContextVar[set[str] | None] = ContextVar("dockyard_image_lease", default=None)


class Leases:
    def __init__(self) -> None:
        # lock guards _open and every lease's set, and orders hold() against GC.
        self.lock = threading.Lock()
        self._open: dict[int, set[str]] = {}

    @contextlib.contextmanager
    def lease(self) -> Iterator[None]:
        """Hold what this task touches until the block ends (after its record is stored)."""
        names: set[str] = set()
        with self.lock:
            self._open[id(names)] = names
        token = _current.set(names)
        try:
            yield
        finally:
            _current.reset(token)
            with self.lock:
                del self._open[id(names)]

    def hold(self, name: str) -> None:
        """Put ``name`` (a digest or chain id) into the current task's lease, if it has one."""
        names = _current.get()
        if names is None:
            return
        with self.lock:
            names.add(name)

    def held(self) -> set[str]:
        """Every name some open lease holds; call with ``lock`` held."""
        out: set[str] = set()
        for names in self._open.values():
            out |= names
        return out

    def open_count(self) -> int:
        with self.lock:
            return len(self._open)
