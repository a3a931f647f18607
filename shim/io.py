"""A process's stdio as the shim holds it: pipes, or a pty master.

Without a tty the shim makes three pipes: the process gets the read end of
stdin (or /dev/null) and the write ends of stdout and stderr; the shim keeps
the other ends.  With a tty the runtime's init makes the pty inside the
container and sends the master over the console socket; stdout and stderr are
then one stream, logged as stdout.

Facts:
- A pipe's reader sees EOF once every writer has closed it, i.e. when the
  process *and* every child that inherited the fd are gone; a pty master sees
  EIO once the last slave fd closes.  Either way the shim stops reading then.
- The shim's ends are non-blocking: a container that stops reading its stdin
  must not stall the shim, so stdin data is queued and written as it drains.
- Closing stdin of a tty cannot close the master (output still flows
  through it); the terminal's EOF character (^D) is written instead, which a
  line-mode reader such as ``cat`` sees as end of input.
"""

from __future__ import annotations

import fcntl
import struct
import termios
import time

from dockyard.api.shim import CAPTURE_LIMIT
from dockyard.runtime.kernel.lean import leanos

from . import cri_log
from .loop import READ, WRITE, Loop

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable

CHUNK = 64 * 1024
EOT = b"\x04"


class LogFile:
    """A container's CRI log file, shared by its stdout and stderr; reopened on request (log rotation)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1
        self.reopen()

    def reopen(self) -> None:
        fd = leanos.open(self.path, leanos.O_WRONLY | leanos.O_APPEND | leanos.O_CREAT | leanos.O_CLOEXEC, 0o640)
        if self.fd >= 0:
            leanos.close(self.fd)
        self.fd = fd

    def write(self, entries: list[bytes]) -> None:
        if entries and self.fd >= 0:
            leanos.write(self.fd, b"".join(entries))

    def close(self) -> None:
        if self.fd >= 0:
            leanos.close(self.fd)
            self.fd = -1


class Capture:
    """Output kept in memory up to a cap; what goes past the cap is dropped (and counted)."""

    __slots__ = ("data", "limit", "dropped")

    def __init__(self, limit: int = CAPTURE_LIMIT) -> None:
        self.data = bytearray()
        self.limit = limit
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))


class ProcessIO:
    """The shim's side of one process's stdio, wired into the loop."""

    def __init__(self, loop: Loop, *, tty: bool, stdin: bool, log: LogFile | None, capture: bool) -> None:
        self.loop = loop
        self.tty = tty
        self.log = log
        self.captures = {cri_log.STDOUT: Capture(), cri_log.STDERR: Capture()} if capture else None
        self.splitters = {s: cri_log.LineSplitter(s) for s in (cri_log.STDOUT, cri_log.STDERR)}
        self.on_done: Callable[[], None] | None = None
        # Attach: called with (stream, data) after the log and capture got it.
        self.on_output: Callable[[str, bytes], None] | None = None
        self._child: list[int] = []     # the process's ends, closed once the runtime has run
        self._readers: dict[int, str] = {}
        self.stdin_fd = -1
        self._stdin_queue = bytearray()
        self._stdin_closing = False
        self.master = -1
        null = leanos.open(leanos.devnull, leanos.O_RDWR | leanos.O_CLOEXEC)
        self._child.append(null)
        if tty:
            self._runtime_stdio = (null, null, null)
            return
        child_in = null
        if stdin:
            child_in, self.stdin_fd = leanos.pipe2(leanos.O_CLOEXEC)
            leanos.set_blocking(self.stdin_fd, False)
            self._child.append(child_in)
        out_r, out_w = leanos.pipe2(leanos.O_CLOEXEC)
        err_r, err_w = leanos.pipe2(leanos.O_CLOEXEC)
        self._child += [out_w, err_w]
        self._readers = {out_r: cri_log.STDOUT, err_r: cri_log.STDERR}
        self._runtime_stdio = (child_in, out_w, err_w)

    def runtime_stdio(self) -> tuple[int, int, int]:
        """Stdin, stdout and stderr to give the runtime (the process inherits them)."""
        return self._runtime_stdio

    def spawn_pump(self) -> dict[int, Callable[[int], None]]:
        """The output pipes and their readers, for draining while the runtime
        runs (Reaper.wait_for): what the process writes then is logged,
        captured and mirrored as any later output is."""
        pump = {}
        for fd in self._readers:
            leanos.set_blocking(fd, False)
            pump[fd] = self._reader(fd)
        return pump

    def spawned(self) -> None:
        """The runtime has run: drop our copies of the process's ends, start reading."""
        for fd in self._child:
            leanos.close(fd)
        self._child = []
        for fd in self._readers:
            leanos.set_blocking(fd, False)
            self.loop.watch(fd, READ, self._reader(fd))

    def attach_console(self, master: int) -> None:
        self.master = master
        leanos.set_blocking(master, False)
        self.stdin_fd = master
        self._readers[master] = cri_log.STDOUT
        self.loop.watch(master, READ, self._reader(master))

    @property
    def done(self) -> bool:
        """Every output stream has reached EOF."""
        return not self._readers

    def _reader(self, fd: int) -> Callable[[int], None]:
        def on_ready(mask: int) -> None:
            if mask & WRITE:
                self._flush_stdin()
            if not mask & READ:
                return
            try:
                data = leanos.read(fd, CHUNK)
            except BlockingIOError:
                return
            except OSError:  # EIO: the pty's last slave closed
                data = b""
            if data:
                self._emit(self._readers[fd], data)
            else:
                self._eof(fd)
        return on_ready

    def _emit(self, stream: str, data: bytes) -> None:
        if self.captures is not None:
            self.captures[stream].add(data)
        if self.log is not None:
            self.log.write(self.splitters[stream].feed(data, time.time_ns()))
        if self.on_output is not None:
            self.on_output(stream, data)

    def _eof(self, fd: int) -> None:
        stream = self._readers.pop(fd)
        if self.log is not None:
            self.log.write(self.splitters[stream].close(time.time_ns()))
        if fd == self.master:
            # Keep the master open for nothing more: stdin of a dead pty goes nowhere.
            self.stdin_fd = -1
            self.master = -1
        self.loop.unwatch(fd)
        leanos.close(fd)
        if self.done and self.on_done is not None:
            self.on_done()

    # --- stdin ---------------------------------------------------------------

    def write_stdin(self, data: bytes) -> bool:
        """Queue data for the process's stdin; False when stdin is closed or absent."""
        if self.stdin_fd < 0 or self._stdin_closing:
            return False
        self._stdin_queue += data
        self._flush_stdin()
        return True

    def close_stdin(self) -> None:
        if self.stdin_fd < 0:
            return
        self._stdin_closing = True
        if self.tty:
            self._stdin_queue += EOT
        self._flush_stdin()

    def _flush_stdin(self) -> None:
        fd = self.stdin_fd
        if fd < 0:
            return
        try:
            while self._stdin_queue:
                n = leanos.write(fd, self._stdin_queue)
                del self._stdin_queue[:n]
        except BlockingIOError:
            pass
        except BrokenPipeError:
            self._stdin_queue.clear()
        if self.tty:
            self.loop.watch(fd, READ | (WRITE if self._stdin_queue else 0), self._reader(fd))
        elif self._stdin_queue:
            self.loop.watch(fd, WRITE, lambda _m: self._flush_stdin())
        else:
            self.loop.unwatch(fd)
            if self._stdin_closing:
                leanos.close(fd)
                self.stdin_fd = -1

    def resize(self, width: int, height: int) -> bool:
        if self.master < 0:
            return False
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        return True

    def close(self) -> None:
        """Stop everything now (the process is gone and its streams are drained or abandoned)."""
        for fd in list(self._readers):
            self._readers.pop(fd)
            self.loop.unwatch(fd)
            leanos.close(fd)
        for fd in self._child:
            leanos.close(fd)
        self._child = []
        if self.stdin_fd >= 0 and self.stdin_fd != self.master:
            self.loop.unwatch(self.stdin_fd)
            leanos.close(self.stdin_fd)
        self.stdin_fd = -1
        self.master = -1
        if self.log is not None:
            for splitter in self.splitters.values():
                self.log.write(splitter.close(time.time_ns()))
