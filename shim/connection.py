"""The API socket: accepting clients and moving frames in and out of them.

Writes are buffered and flushed as the socket drains, so a slow or stuck
client (say, one that subscribed and stopped reading) costs memory for its
own buffer but never blocks the shim.  An attach client's output is bounded
on top of that (``api.ATTACH_BUFFER``, see service.py).

Fds handed to the client (``send_fds``) wait in ``_fds`` with the offset in
``out`` where their frame starts; the flush sends exactly up to that offset,
then the frame's first bytes in one sendmsg with SCM_RIGHTS, so the fds ride
on the frame they belong to (api/shim.py: "Passing fds").  Once sent, or when
the connection closes first, the shim's copies are closed.
"""

from __future__ import annotations

from dockyard.api import shim as api
from dockyard.runtime.kernel.lean import leanos, leansocket

from .loop import READ, WRITE, Loop

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

CHUNK = 256 * 1024


class Connection:
    def __init__(self, loop: Loop, sock: leansocket.socket, on_message: Callable[[Connection, dict[str, Any]], None],
                 on_close: Callable[[Connection], None]) -> None:
        self.loop = loop
        self.sock = sock
        self.frames = api.FrameBuffer()
        self.out = bytearray()
        self.subscribed = False
        self.closed = False
        # (offset in out, fds to send with the byte there), offsets increasing.
        self._fds: list[tuple[int, list[int]]] = []
        self._on_message = on_message
        self._on_close = on_close
        sock.setblocking(False)
        loop.watch(sock.fileno(), READ, self._ready)

    def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        self.out += api.encode(message)
        self._flush()

    def send_fds(self, message: dict[str, Any], fds: list[int]) -> None:
        """Send ``message`` with ``fds`` attached; the fds now belong to the connection (closed once sent)."""
        if self.closed:
            _close_all(fds)
            return
        self._fds.append((len(self.out), fds))
        self.send(message)

    def _flush(self) -> None:
        try:
            while self.out:
                if self._fds and self._fds[0][0] == 0:
                    fds = self._fds[0][1]
                    end = self._fds[1][0] if len(self._fds) > 1 else len(self.out)
                    n = leansocket.send_fds(self.sock, [bytes(self.out[:end])], fds)
                    self._fds.pop(0)
                    _close_all(fds)
                else:
                    end = self._fds[0][0] if self._fds else len(self.out)
                    n = self.sock.send(self.out if end == len(self.out) else self.out[:end])
                del self.out[:n]
                self._fds = [(at - n, fds) for at, fds in self._fds]
        except BlockingIOError:
            pass
        except OSError:  # EPIPE, ECONNRESET: the client is gone
            self.close()
            return
        self.loop.watch(self.sock.fileno(), READ | (WRITE if self.out else 0), self._ready)

    def _ready(self, mask: int) -> None:
        if mask & WRITE:
            self._flush()
        if not mask & READ or self.closed:
            return
        try:
            data = self.sock.recv(CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        try:
            messages = self.frames.feed(data)
        except api.ProtocolError:
            self.close()  # nothing sane can be answered on a broken stream
            return
        for message in messages:
            self._on_message(self, message)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.unwatch(self.sock.fileno())
        self.sock.close()
        for _, fds in self._fds:
            _close_all(fds)
        self._fds = []
        self._on_close(self)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        leanos.close(fd)


class Listener:
    def __init__(self, loop: Loop, path: str, on_message: Callable[[Connection, dict[str, Any]], None],
                 on_close: Callable[[Connection], None], on_open: Callable[[Connection], None]) -> None:
        self.loop = loop
        self.sock = leansocket.unix_stream()
        self.sock.bind(path)
        self.sock.listen(64)
        self.sock.setblocking(False)
        self._args = (on_message, on_close)
        self._on_open = on_open
        loop.watch(self.sock.fileno(), READ, self._accept)

    def _accept(self, _mask: int) -> None:
        try:
            sock = leansocket.accept(self.sock)
        except BlockingIOError:
            return
        self._on_open(Connection(self.loop, sock, *self._args))

    def close(self) -> None:
        self.loop.unwatch(self.sock.fileno())
        self.sock.close()
