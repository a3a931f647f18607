"""The shim's single-threaded event loop: an epoll, fd callbacks and timers.

Why not asyncio or ``selectors``: the shim is one long-lived process per
pod, its start and its memory are paid per pod, and both are costly imports
(runtime/kernel/lean/README.md) for the one class the shim would use.  This
keeps selectors' EpollSelector's behaviour (CPython 3.11): level-triggered;
an error or hang-up wakes both readers and writers; a timeout is rounded up
to the millisecond (epoll.poll does that itself); a callback whose watch
was dropped or changed by an earlier callback of the same round is skipped.
"""

from __future__ import annotations

import heapq
import select
import time

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable

# selectors' EVENT_READ and EVENT_WRITE; PRIORITY (alone) for a cgroup file
# whose changes wake poll() with POLLPRI (shim/oom.py).
READ = 1
WRITE = 2
PRIORITY = 4
_EPOLL_EVENTS = {READ: select.EPOLLIN, WRITE: select.EPOLLOUT, READ | WRITE: select.EPOLLIN | select.EPOLLOUT,
                 PRIORITY: select.EPOLLPRI}


class Loop:
    def __init__(self) -> None:
        self._epoll = select.epoll()
        # fd -> (events, callback); replaced, not mutated, when either changes (see run_once).
        self._watched: dict[int, tuple[int, Callable[[int], None]]] = {}
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._cancelled: set[int] = set()
        self.running = True

    def watch(self, fd: int, events: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(mask)`` whenever ``fd`` is ready for ``events`` (replaces an earlier watch)."""
        if fd < 0:
            raise ValueError(f"Invalid file descriptor: {fd}")
        if events not in _EPOLL_EVENTS:
            raise ValueError(f"Invalid events: {events!r}")
        entry = (events, callback)
        old = self._watched.get(fd)
        if old is None:
            self._epoll.register(fd, _EPOLL_EVENTS[events])
        elif old == entry:
            return  # the same watch (a bound method compares equal): keep it as it is
        elif old[0] != events:
            try:
                self._epoll.modify(fd, _EPOLL_EVENTS[events])
            except BaseException:
                del self._watched[fd]
                raise
        self._watched[fd] = entry

    def unwatch(self, fd: int) -> None:
        if self._watched.pop(fd, None) is None:
            return
        try:
            self._epoll.unregister(fd)
        except OSError:  # the fd was closed first: the kernel dropped it already
            pass

    def call_later(self, delay: float, callback: Callable[[], None]) -> int:
        self._seq += 1
        heapq.heappush(self._timers, (time.monotonic() + delay, self._seq, callback))
        return self._seq

    def cancel(self, handle: int) -> None:
        self._cancelled.add(handle)

    def run_once(self) -> None:
        timeout = -1.0
        if self._timers:
            timeout = max(0.0, self._timers[0][0] - time.monotonic())
        ready = []
        for fd, happened in self._epoll.poll(timeout, max(len(self._watched), 1)):
            entry = self._watched.get(fd)
            if entry is None:
                continue
            mask = (WRITE if happened & ~select.EPOLLIN else 0) | (READ if happened & ~select.EPOLLOUT else 0)
            mask |= PRIORITY if happened & (select.EPOLLPRI | select.EPOLLERR) else 0
            ready.append((fd, entry, mask & entry[0]))
        for fd, entry, mask in ready:
            if self._watched.get(fd) is entry:  # an earlier callback may have unwatched it
                entry[1](mask)
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
