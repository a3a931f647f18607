"""Dial 127.0.0.1:port inside a pod's network namespace, for port-forward.

Facts about network namespaces that shape this:

* A socket belongs to the network namespace that was current for the thread
  that called socket(2), for its whole life; connect(2), send and receive use
  that namespace whatever thread later touches the fd.  So it is enough to
  *create* the socket inside the pod's netns; asyncio can then drive the fd
  from the daemon's event loop thread, which stays in the host namespace.
* setns(2) with CLONE_NEWNET changes the namespace of the calling *thread*
  only (network namespace is per-task, and a thread is a task), so a
  dedicated short-lived thread can enter the pod's netns without touching
  the loop thread or any other thread of the daemon.  The thread is thrown
  away afterwards instead of switching back: if switching back failed, a
  pooled thread would silently open later sockets in the wrong namespace.
* Entering a netns needs CAP_SYS_ADMIN in the user namespace owning it; the
  daemon runs as root, so it has it.

The connect happens in the thread too (a blocking connect on loopback is
immediate: refused or accepted at once), then the connected socket is handed
to ``asyncio.open_connection(sock=...)``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading

# mypy checks cri/ by path, where the dockyard.* mapping is unknown.
from dockyard.runtime.kernel.syscalls import CLONE_NEWNET, setns

from ..errors import NotFound, Unavailable


def _connect_in_netns(netns_path: str, port: int, timeout: float) -> socket.socket:
    try:
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as err:
        raise NotFound(f"network namespace {netns_path} does not exist") from err
    try:
        setns(fd, CLONE_NEWNET, netns_path)
    finally:
        os.close(fd)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        return sock
    except OSError as err:
        sock.close()
        raise Unavailable(f"cannot connect to 127.0.0.1:{port} in {netns_path}: {err.strerror or err}") from err


async def dial(netns_path: str, port: int, *, timeout: float = 10.0
               ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to 127.0.0.1:``port`` in the netns at ``netns_path``.

    Raises NotFound (no such netns), Unavailable (nobody listens, or the
    connect failed), or the SyscallError of setns."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[socket.socket] = loop.create_future()

    def worker() -> None:
        try:
            sock = _connect_in_netns(netns_path, port, timeout)
        except BaseException as err:  # handed to the awaiting coroutine, not swallowed
            loop.call_soon_threadsafe(_settle_error, fut, err)
            return
        loop.call_soon_threadsafe(_settle, fut, sock)

    threading.Thread(target=worker, name=f"netns-dial-{port}", daemon=True).start()
    sock = await fut
    return await asyncio.open_connection(sock=sock)


def _settle(fut: asyncio.Future[socket.socket], sock: socket.socket) -> None:
    if fut.cancelled():
        sock.close()
    else:
        fut.set_result(sock)


def _settle_error(fut: asyncio.Future[socket.socket], err: BaseException) -> None:
    if not fut.cancelled():
        fut.set_exception(err)
