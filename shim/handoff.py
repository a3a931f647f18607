"""An exec process's stdio made by the shim and handed to the daemon (``exec`` with ``io: "fds"``).

The shim creates the pipes (or receives the pty master from the runtime's
console socket), gives the process its ends through the runtime, and hands
the other ends to the caller over SCM_RIGHTS (connection.py).  It keeps
none: the daemon then moves the bytes itself, with no copy through the
shim, and the shim only reaps the process and answers ``wait``.

Facts:
- The caller must have its ends before the process can block on them:
  a process writing more than a pipe's 64 KiB blocks until someone reads.
  The fds go out with the ``exec`` response, right after ``exec --detach``
  returned, so the daemon is the reader from then on.
- With a tty the pty master is the only fd: output, input and TIOCSWINSZ
  all go through it, so resizing is the daemon's ioctl (``resize_pty`` on
  such an exec is refused: the shim holds no master).
- A stream the caller did not ask for is /dev/null for the process, so its
  writes succeed and vanish instead of blocking on a pipe nobody reads.
"""

from __future__ import annotations

from dockyard.runtime.kernel.lean import leanos

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable

    from .io import Capture, LogFile


class HandedIO:
    """The ProcessIO face service.py expects, for stdio the shim gives away."""

    captures: dict[str, Capture] | None = None
    log: LogFile | None = None
    done = True  # no output passes through the shim: an exit finishes at once

    def __init__(self, *, tty: bool, stdin: bool, stdout: bool, stderr: bool) -> None:
        self.tty = tty
        self.on_done: Callable[[], None] | None = None
        self.on_output: Callable[[str, bytes], None] | None = None
        self._child: list[int] = []   # the process's ends: closed once the runtime has run
        self._handed: list[tuple[str, int]] = []   # (name, fd) for the caller, in api order
        self._spawned = False
        null = leanos.open(leanos.devnull, leanos.O_RDWR | leanos.O_CLOEXEC)
        self._child.append(null)
        if tty:
            self._stdio = (null, null, null)
            return
        try:
            child_in = null
            if stdin:
                child_in, ours = leanos.pipe2(leanos.O_CLOEXEC)
                self._child.append(child_in)
                self._handed.append(("stdin", ours))
            outs = []
            for name, wanted in (("stdout", stdout), ("stderr", stderr)):
                if not wanted:
                    outs.append(null)
                    continue
                ours, child_end = leanos.pipe2(leanos.O_CLOEXEC)
                self._child.append(child_end)
                self._handed.append((name, ours))
                outs.append(child_end)
        except OSError:
            self.close()
            raise
        self._stdio = (child_in, outs[0], outs[1])

    def runtime_stdio(self) -> tuple[int, int, int]:
        return self._stdio

    def spawn_pump(self) -> dict[int, Callable[[int], None]]:
        """Nothing to drain: the pipes' other ends are the caller's, read once
        ``exec`` is answered.  What the runtime may write there first is its
        own error report, which it keeps short (runtime/kernel/errors.py)."""
        return {}

    def spawned(self) -> None:
        for fd in self._child:
            leanos.close(fd)
        self._child = []
        self._spawned = True

    def attach_console(self, master: int) -> None:
        self._handed.append(("pty", master))

    def take(self) -> tuple[list[str], list[int]]:
        """The names and fds for the caller; from now on they are the caller's (or the connection's)."""
        handed, self._handed = self._handed, []
        return [name for name, _ in handed], [fd for _, fd in handed]

    def discard(self) -> None:
        """The exec failed: nothing is handed over."""
        self._spawned = False
        self.close()

    def resize(self, width: int, height: int) -> bool:
        return False

    def write_stdin(self, data: bytes) -> bool:
        return False

    def close_stdin(self) -> None:
        return None

    def close(self) -> None:
        """Drop what the shim holds.  Once the process runs, the caller's ends are not the
        shim's to close: a process that exits at once is finished (and closed) before its
        ``exec`` is answered, and the caller must still get its output."""
        for fd in self._child:
            leanos.close(fd)
        self._child = []
        if not self._spawned:
            for _, fd in self._handed:
                leanos.close(fd)
            self._handed = []
