"""The shim's single-threaded event loop: a selector, fd callbacks and timers.

Why not asyncio: the shim is one long-lived process per pod and its memory
is paid per pod; ``selectors`` is already loaded by the modules the shim
needs, asyncio would add ~4 MiB and ~30 ms of imports.
"""

from __future__ import annotations

import heapq
import selectors
import time

TYPE_CHECKING = False  # see runtime/records.py
if TYPE_CHECKING:
    from collections.abc import Callable

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE


class Loop:
    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._cancelled: set[int] = set()
        self.running = True

    def watch(self, fd: int, events: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(mask)`` whenever ``fd`` is ready for ``events`` (replaces an earlier watch)."""
        try:
            self._sel.modify(fd, events, callback)
        except KeyError:
            self._sel.register(fd, events, callback)

    def unwatch(self, fd: int) -> None:
        try:
            self._sel.unregister(fd)
        except (KeyError, ValueError):
            pass

    def call_later(self, delay: float, callback: Callable[[], None]) -> int:
        self._seq += 1
        heapq.heappush(self._timers, (time.monotonic() + delay, self._seq, callback))
        return self._seq

    def cancel(self, handle: int) -> None:
        self._cancelled.add(handle)

    def run_once(self) -> None:
        timeout = None
        if self._timers:
            timeout = max(0.0, self._timers[0][0] - time.monotonic())
        for key, mask in self._sel.select(timeout):
            if self._sel.get_map().get(key.fd) is key:  # an earlier callback may have unwatched it
                key.data(mask)
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, handle, callback = heapq.heappop(self._timers)
            if handle in self._cancelled:
                self._cancelled.discard(handle)
                continue
            callback()

    def run(self) -> None:
        while self.running:
            self.run_once()
