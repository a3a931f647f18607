"""Unix stream sockets through ``_socket``, the C module under ``socket``.

``socket.py`` imports ``enum`` and ``selectors`` (README.md here); the shim
and the runtime's console hand-over need only a few of its helpers, written
here as socket.py has them (CPython 3.11): ``accept`` wraps ``_accept()``
(accept4 with SOCK_CLOEXEC, so the new socket is blocking and not
inherited), ``send_fds``/``recv_fds`` pack the fds as C ints in one
SCM_RIGHTS message (with struct: array would import collections.abc).
``_socket.socket`` has no ``with`` support: callers close in ``finally``.
"""

from __future__ import annotations

import _socket
import struct

socket = _socket.socket
AF_UNIX = _socket.AF_UNIX
SOCK_STREAM = _socket.SOCK_STREAM
_INT = struct.calcsize("i")


def unix_stream() -> _socket.socket:
    """A new AF_UNIX stream socket (close-on-exec, as every socket Python makes)."""
    return _socket.socket(AF_UNIX, SOCK_STREAM)


def accept(listener: _socket.socket) -> _socket.socket:
    """The next connection of ``listener`` (blocking; BlockingIOError or TimeoutError as accept(2) and the
    listener's timeout say)."""
    fd, _addr = listener._accept()  # type: ignore[attr-defined]  # typeshed's _socket lacks it; socket.py calls it
    return _socket.socket(fileno=fd)


def send_fds(sock: _socket.socket, buffers: list[bytes], fds: list[int]) -> int:
    """sendmsg(2) of ``buffers`` with ``fds`` as SCM_RIGHTS; bytes sent."""
    return sock.sendmsg(buffers, [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])


def recv_fds(sock: _socket.socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    """recvmsg(2) of up to ``bufsize`` bytes and ``maxfds`` fds: (data, fds received)."""
    fds: list[int] = []
    msg, ancdata, _flags, _addr = sock.recvmsg(bufsize, _socket.CMSG_LEN(maxfds * _INT))
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += struct.unpack(f"{len(data) // _INT}i", data[:len(data) - len(data) % _INT])
    return msg, fds
