"""Reaping the shim's children: containers, execs and runtime invocations.

Facts:
- The shim is a child subreaper, so a container's init (forked by the
  runtime's ``create``) and an exec'd process become the shim's children when
  the runtime exits.  Every exit reaches the shim as SIGCHLD; signals merge,
  so each wake-up reaps with ``waitpid(-1, WNOHANG)`` until nothing is left.
- The shim also waits for the runtime processes it starts.  Those must not be
  mistaken for container exits, and their statuses must not be lost to the
  generic reap: a pid registered with ``expect`` before anything is reaped is
  kept aside for ``wait_for``.
- A container process can exit before the shim knows its pid (the runtime
  writes the pid file, the process dies at once, the shim reaps it, and only
  then reads the file).  The callback decides what to do with an unknown pid
  (the service keeps it as an unclaimed exit); nothing is dropped here.
- The Python-level SIGCHLD handler does nothing: ``signal.set_wakeup_fd``
  writes a byte to a pipe the loop watches, and reaping runs in the loop.
"""

from __future__ import annotations

import select
import time

from dockyard.api.shim import Code, ShimError
from dockyard.runtime.kernel.lean import leanos, leansignal

from .loop import READ

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def _ignore(_signum: int, _frame: object) -> None:
    pass


class Reaper:
    def __init__(self, on_exit: Callable[[int, int, int], None]) -> None:
        """``on_exit(pid, wait_status, exited_at_ns)`` for every reaped pid not ``expect``ed."""
        self._on_exit = on_exit
        self._expected: dict[int, int | None] = {}
        self.fd, self._wfd = leanos.pipe2(leanos.O_NONBLOCK | leanos.O_CLOEXEC)
        leansignal.signal(leansignal.SIGCHLD, _ignore)
        leansignal.set_wakeup_fd(self._wfd, warn_on_full_buffer=False)

    def expect(self, pid: int) -> None:
        self._expected[pid] = None

    def on_wakeup(self, _mask: int = 0) -> None:
        try:
            while leanos.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass
        self.reap()

    def reap(self) -> None:
        while True:
            try:
                pid, status = leanos.waitpid(-1, leanos.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self._expected:
                self._expected[pid] = status
            else:
                self._on_exit(pid, status, time.time_ns())

    def wait_for(self, pid: int, timeout: float, what: str,
                 pump: Mapping[int, Callable[[int], None]] | None = None) -> int:
        """Block until the ``expect``ed ``pid`` exits (reaping others meanwhile); its wait status.

        ``pump`` maps fds to the callbacks that read them (``callback(READ)``):
        the output pipes of the process the runtime is starting.  That process
        may write before the runtime returns (an init reporting a failure on
        its stderr, a hook's output), and the runtime may wait for it, so
        those pipes are drained while we wait: a full pipe would stall the
        process, the runtime and the whole shim until the timeout.

        On timeout the process is killed and DeadlineExceeded raised.
        """
        deadline = time.monotonic() + timeout
        pump = pump or {}
        try:
            while True:
                self.reap()
                status = self._expected[pid]
                if status is not None:
                    return status
                left = deadline - time.monotonic()
                if left <= 0:
                    leanos.kill(pid, leansignal.SIGKILL)
                    leanos.waitpid(pid, 0)
                    raise ShimError(Code.DEADLINE_EXCEEDED, f"{what}: no answer after {timeout:g}s (killed)")
                readable, _, _ = select.select([self.fd, *pump], [], [], left)
                for fd in readable:
                    if fd != self.fd:
                        pump[fd](READ)
                try:
                    while leanos.read(self.fd, 4096):
                        pass
                except BlockingIOError:
                    pass
        finally:
            self._expected.pop(pid, None)
